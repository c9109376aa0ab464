// The noisy tenant of bench/admission.ts, in its own process (as a real flooding client is): keeps
// FLOOD_IN_FLIGHT calls in flight until stdin closes, then prints what happened as JSON.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { gatewayTransport } from "../../src/gateway/client.ts";
import { KernelService } from "../../src/gen/solo/v1/solo_pb.js";

const c = JSON.parse(process.env.SOLO_BENCH_FLOOD ?? "{}") as {
  url: string;
  ca: string;
  cert: string;
  key: string;
  token: string;
  inFlight: number;
};
const noisy = createClient(KernelService, gatewayTransport({ ...c, protocol: "connect-binary" }));
let stop = false;
process.stdin.on("end", () => {
  stop = true;
});
process.stdin.resume();
const counts = { served: 0, shed: 0, other: 0 };
const lane = async (): Promise<void> => {
  while (!stop) {
    try {
      await noisy.call({ ref: { tenant: "noisy", service: "work" } });
      counts.served++;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.ResourceExhausted) counts.shed++;
      else counts.other++;
    }
  }
};
process.stdout.write("flooding\n");
await Promise.all(Array.from({ length: c.inFlight }, lane));
process.stdout.write(`${JSON.stringify(counts)}\n`);
