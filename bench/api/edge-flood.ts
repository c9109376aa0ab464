// The attacker of bench/edge.ts, in its own process: a certificate holder with no token keeps
// FLOOD_IN_FLIGHT calls naming the quiet tenant in flight until stdin closes, then prints how
// many were denied (unauthenticated) and throttled (held, then refused) as JSON.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { gatewayTransport } from "../../src/gateway/client.ts";
import { KernelService } from "../../src/gen/solo/v1/solo_pb.js";

const c = JSON.parse(process.env.SOLO_BENCH_FLOOD ?? "{}") as { url: string; ca: string; cert: string; key: string; inFlight: number };
const attacker = createClient(KernelService, gatewayTransport({ ...c, protocol: "connect-binary" }));
let stop = false;
process.stdin.on("end", () => {
  stop = true;
});
process.stdin.resume();
const counts = { denied: 0, throttled: 0, other: 0 };
const lane = async (): Promise<void> => {
  while (!stop) {
    try {
      await attacker.call({ ref: { tenant: "quiet", service: "work" } });
      counts.other++;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.Unauthenticated) counts.denied++;
      else if (err instanceof ConnectError && err.code === Code.ResourceExhausted) counts.throttled++;
      else counts.other++;
    }
  }
};
process.stdout.write("flooding\n");
await Promise.all(Array.from({ length: c.inFlight }, lane));
process.stdout.write(`${JSON.stringify(counts)}\n`);
