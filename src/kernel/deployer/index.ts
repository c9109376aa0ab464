// The deployer part: checks (checks.ts), starting and stopping instances (launch.ts), deploys,
// kills and version history (deployer.ts), and recovery at open (recover.ts).

export { type CheckedDeploy, CodeChecks, checkIdentity, checkVersion, FINDINGS_RECORDED } from "./checks.ts";
export { Deployer } from "./deployer.ts";
export { type Adopted, Launcher } from "./launch.ts";
export { type RecoveryParts, recover } from "./recover.ts";
