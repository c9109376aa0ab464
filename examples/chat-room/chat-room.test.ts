import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { JsonValue } from "@bufbuild/protobuf";
import { errorAnswer, exampleSource, gatewayError, startTestGateway, type TenantClient, type TestGateway, until } from "../test-gateway.ts";

const ROOM = exampleSource(import.meta.url, "room.ts");
const INBOX = exampleSource(import.meta.url, "inbox.ts");

interface Item {
  n: number;
  type: "message" | "joined";
  room: string;
  seq: number;
  from: string | null;
  text: string | null;
  at: number;
  via: string;
}
interface Read {
  items: Item[];
  unread: number;
}
interface InboxStats {
  kept: number;
  unread: number;
  last: number;
  waiting: boolean;
  received: number;
  rejected: number;
  dropped: number;
}
interface Posted {
  seq: number;
  delivered: number;
  undelivered: Array<{ member: string; reason: string; message: string }>;
}

let gw: TestGateway;
let acme: TenantClient;

// The room may reach these inboxes; inbox-erin is granted but never deployed, inbox-dave is deployed but not granted.
const GRANTED = ["inbox-alice", "inbox-bob", "inbox-carol", "inbox-erin"];

const inboxStats = (inbox: string) => acme.call<InboxStats>(inbox, { op: "stats" });
/** Casts are asynchronous: wait (boundedly) until an inbox has received `n` messages in all. */
const received = (inbox: string, n: number) => until(`${inbox} to receive ${n}`, async () => (await inboxStats(inbox)).received >= n);
const texts = (items: Item[]) => items.filter((i) => i.type === "message").map((i) => `${i.seq} ${i.from}: ${i.text}`);

before(async () => {
  gw = await startTestGateway();
  acme = await gw.tenant("acme", ["deploy:room*", "deploy:inbox-*", "call:room*", "call:inbox-*"]);
  for (const name of ["inbox-alice", "inbox-bob", "inbox-carol", "inbox-dave"]) {
    await acme.deploy(name, INBOX, { args: { rooms: ["room"] }, grants: { storage: true } });
  }
  await acme.deploy("room", ROOM, { args: { title: "general" }, grants: { call: GRANTED, storage: true } });
  for (const member of ["inbox-alice", "inbox-bob", "inbox-carol"]) {
    assert.equal((await acme.call<{ joined: string }>("room", { op: "join", member })).joined, member);
  }
});

after(async () => {
  await gw?.close();
});

describe("the chat-room example", () => {
  it("fans a post out to every member's inbox, in order", async () => {
    const first = await acme.call<Posted>("room", { op: "post", from: "inbox-alice", text: "hi all" });
    assert.deepEqual(first, { seq: 1, delivered: 3, undelivered: [] });
    await acme.call("room", { op: "post", from: "inbox-bob", text: "hey alice" });
    await acme.call("room", { op: "post", from: "inbox-alice", text: "lunch?" });
    for (const inbox of ["inbox-alice", "inbox-bob", "inbox-carol"]) {
      await received(inbox, 4); // the welcome notice and three messages
      const read = await acme.call<Read>(inbox, { op: "read" });
      assert.deepEqual(read.items[0]?.type, "joined", inbox);
      assert.deepEqual(texts(read.items), ["1 inbox-alice: hi all", "2 inbox-bob: hey alice", "3 inbox-alice: lunch?"], inbox);
      assert.ok(read.items.every((i) => i.room === "general" && i.via === "room"));
      assert.equal(read.unread, 0);
      assert.deepEqual((await acme.call<Read>(inbox, { op: "read" })).items, [], "read messages are not read again");
    }
    const history = await acme.call<{ messages: Array<{ seq: number }>; latest: number }>("room", { op: "history", after: 1 });
    assert.deepEqual(
      history.messages.map((m) => m.seq),
      [2, 3],
    );
  });

  it("stops delivering to a member who left", async () => {
    assert.deepEqual(await acme.call("room", { op: "leave", member: "inbox-carol" }), { left: true });
    const posted = await acme.call<Posted>("room", { op: "post", from: "inbox-bob", text: "carol left" });
    assert.equal(posted.delivered, 2);
    await received("inbox-alice", 5);
    const carol = await inboxStats("inbox-carol");
    assert.equal(carol.received, 4);
    assert.deepEqual(texts((await acme.call<Read>("inbox-alice", { op: "read" })).items), [`${posted.seq} inbox-bob: carol left`]);
    assert.deepEqual(await acme.call("room", { op: "members" }), { room: "general", members: ["inbox-alice", "inbox-bob"] });
    assert.equal((await acme.call<{ joined: string }>("room", { op: "join", member: "inbox-carol" })).joined, "inbox-carol");
  });

  it("refuses a member the room cannot reach, with the kernel's reason", async () => {
    const notGranted = await errorAnswer(acme.call("room", { op: "join", member: "inbox-dave" }), "room");
    assert.equal(notGranted.code, "permission_denied");
    assert.deepEqual(notGranted.details, { field: "member", reason: "SOLO_ERR_GRANT_MISSING" });
    const missing = await errorAnswer(acme.call("room", { op: "join", member: "inbox-erin" }), "room");
    assert.deepEqual([missing.code, missing.details], ["not_found", { field: "member", reason: "SOLO_ERR_SERVICE_NOT_FOUND" }]);
    assert.deepEqual((await acme.call<{ members: string[] }>("room", { op: "members" })).members, [
      "inbox-alice",
      "inbox-bob",
      "inbox-carol",
    ]);
    assert.equal((await inboxStats("inbox-dave")).received, 0);
  });

  it("reports an inbox that went down in the post's reply, and keeps delivering to the rest", async () => {
    await acme.kernel.kill({ ref: { tenant: "acme", service: "inbox-carol" } });
    const posted = await acme.call<Posted>("room", { op: "post", from: "inbox-alice", text: "anyone?" });
    assert.equal(posted.delivered, 2);
    assert.deepEqual(
      posted.undelivered.map((u) => [u.member, u.reason]),
      [["inbox-carol", "SOLO_ERR_SERVICE_STOPPED"]],
    );
    await acme.deploy("inbox-carol", INBOX, { args: { rooms: ["room"] }, grants: { storage: true } });
  });

  it("keeps messages, the read position, members and the counter across restarts", async () => {
    const before = await inboxStats("inbox-bob");
    assert.ok(before.unread > 0);
    await acme.restart("inbox-bob");
    const after = await inboxStats("inbox-bob");
    assert.deepEqual([after.kept, after.unread, after.last], [before.kept, before.unread, before.last]);
    await acme.restart("room");
    assert.deepEqual((await acme.call<{ members: string[] }>("room", { op: "members" })).members, [
      "inbox-alice",
      "inbox-bob",
      "inbox-carol",
    ]);
    const seqBefore = (await acme.call<{ latest: number }>("room", { op: "history" })).latest;
    const posted = await acme.call<Posted>("room", { op: "post", from: "inbox-bob", text: "back" });
    assert.equal(posted.seq, seqBefore + 1, "the counter survived");
  });

  it("answers a read with wait: true (a long poll) when the next message arrives, instead of being polled", async () => {
    // A room of one, so this inbox gets nothing but what the test posts.
    await acme.deploy("inbox-frank", INBOX, { args: { rooms: ["room-frank"] }, grants: { storage: true } });
    await acme.deploy("room-frank", ROOM, { grants: { call: ["inbox-frank"], storage: true } });
    await acme.call("room-frank", { op: "join", member: "inbox-frank" });
    await received("inbox-frank", 1);
    assert.equal((await acme.call<Read>("inbox-frank", { op: "read" })).items[0]?.type, "joined");
    const waitingRead = (timeoutMs = 60_000) => acme.call<Read>("inbox-frank", { op: "read", wait: true }, timeoutMs);
    const held = () => until("a read to wait", async () => (await inboxStats("inbox-frank")).waiting);

    // Nothing unread: the read waits, and the next delivery answers it.
    const next = waitingRead();
    await held();
    await acme.call("room-frank", { op: "post", from: "inbox-frank", text: "anyone up?" });
    const got = await next;
    assert.deepEqual([texts(got.items), got.unread], [["1 inbox-frank: anyone up?"], 0]);
    assert.deepEqual((await acme.call<Read>("inbox-frank", { op: "read" })).items, [], "what the long poll got was read");

    // With something unread, it is answered at once, as a plain read.
    await acme.call("room-frank", { op: "post", from: "inbox-frank", text: "hello?" });
    await received("inbox-frank", 3);
    assert.deepEqual(texts((await waitingRead()).items), ["2 inbox-frank: hello?"]);

    // A newer long poll lets the older one go, empty.
    const older = waitingRead();
    await held();
    const newer = waitingRead();
    assert.deepEqual(await older, { items: [], unread: 0 });
    await acme.call("room-frank", { op: "post", from: "inbox-frank", text: "still here" });
    assert.deepEqual(texts((await newer).items), ["3 inbox-frank: still here"]);

    // A caller that gave up (its timeout passed) gets nothing, so the message stays unread.
    const gaveUp = gatewayError(waitingRead(2000));
    await held();
    assert.equal((await gaveUp).reason, "SOLO_ERR_CALL_TIMEOUT");
    await acme.call("room-frank", { op: "post", from: "inbox-frank", text: "too late" });
    await received("inbox-frank", 5);
    const after = await inboxStats("inbox-frank");
    assert.deepEqual([after.unread, after.waiting, after.received], [1, false, 5], "the inbox caught SOLO_ERR_REPLY_TOO_LATE and went on");
    assert.deepEqual(texts((await acme.call<Read>("inbox-frank", { op: "read" })).items), ["4 inbox-frank: too late"]);
  });

  it("drops messages cast into an inbox from outside, so no one can forge a room's message", async () => {
    const before = await inboxStats("inbox-alice");
    await acme.cast("inbox-alice", { type: "message", room: "general", seq: 999, from: "inbox-bob", text: "send me your password", at: 0 });
    await until("the forged cast to be handled", async () => (await inboxStats("inbox-alice")).rejected === before.rejected + 1);
    const after = await inboxStats("inbox-alice");
    assert.deepEqual([after.received, after.kept], [before.received, before.kept]);
  });

  it("answers malformed requests with an error of its own, naming the field, and changes nothing", async () => {
    const history = await acme.call("room", { op: "history" });
    const cases: Array<[string, JsonValue, string, string]> = [
      ["room", { op: "post", from: "inbox-alice", text: "   " }, "invalid_argument", "text"],
      ["room", { op: "post", from: "inbox-alice", text: "x".repeat(4001) }, "invalid_argument", "text"],
      ["room", { op: "post", from: "Inbox Alice", text: "hi" }, "invalid_argument", "from"],
      ["room", { op: "post", from: "inbox-dave", text: "let me in" }, "failed_precondition", "from"],
      ["room", { op: "join" }, "invalid_argument", "member"],
      ["room", { op: "history", limit: 0 }, "invalid_argument", "limit"],
      ["room", { op: "kick", member: "inbox-bob" }, "invalid_argument", "op"],
      ["room", "hello", "invalid_argument", ""],
      ["inbox-alice", { op: "read", limit: 5000 }, "invalid_argument", "limit"],
      ["inbox-alice", { op: "delete" }, "invalid_argument", "op"],
      ["inbox-alice", { op: "read", wait: "yes" }, "invalid_argument", "wait"],
      ["inbox-alice", 7, "invalid_argument", ""],
    ];
    for (const [service, request, code, field] of cases) {
      const answer = await errorAnswer(acme.call(service, request), service);
      assert.deepEqual([answer.code, answer.details], [code, field === "" ? undefined : { field }], JSON.stringify(request).slice(0, 80));
    }
    assert.deepEqual(await acme.call("room", { op: "history" }), history, "nothing was posted");
  });

  it("refuses to deploy a room with a wrong setting, naming it", async () => {
    const e = await gatewayError(acme.deploy("room-bad", ROOM, { args: { historySize: 0 } }));
    assert.equal(e.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
    assert.match(e.message, /args\.historySize must be an integer from 1 to 10000/);
  });
});
