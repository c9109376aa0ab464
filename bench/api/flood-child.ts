// The flooding client of bench/api/flood.ts, in its own process: keeps `inFlight` calls to
// `tenant`'s "work" service in flight (with `token`, if given) until stdin closes, then prints how
// they ended, by Connect code, as JSON: admission.ts floods with a valid token (served or shed),
// edge.ts with none (denied or throttled).
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { gatewayTransport } from "../../src/gateway/client.ts";
import { KernelService } from "../../src/gen/solo/v1/solo_pb.js";
import type { FloodCounts, FloodSettings } from "./flood.ts";

const c = JSON.parse(process.env.SOLO_BENCH_FLOOD ?? "{}") as FloodSettings;
const flooder = createClient(KernelService, gatewayTransport({ ...c, protocol: "connect-binary" }));
let stop = false;
process.stdin.on("end", () => {
  stop = true;
});
process.stdin.resume();
const counts: FloodCounts = { ok: 0, unauthenticated: 0, resourceExhausted: 0, other: 0 };
const lane = async (): Promise<void> => {
  while (!stop) {
    try {
      await flooder.call({ ref: { tenant: c.tenant, service: "work" } });
      counts.ok++;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.Unauthenticated) counts.unauthenticated++;
      else if (err instanceof ConnectError && err.code === Code.ResourceExhausted) counts.resourceExhausted++;
      else counts.other++;
    }
  }
};
process.stdout.write("flooding\n");
await Promise.all(Array.from({ length: c.inFlight }, lane));
process.stdout.write(`${JSON.stringify(counts)}\n`);
