#!/usr/bin/env node
// xingtu-ts: the TypeScript client from a shell. Prints each answer as one JSON line on stdout.
// Exit codes: 0 done, 2 refused by the workflow (JSON {kind, reasons} on stderr), 3 payload does not match its
// schema (nothing sent), 1 anything else. Connection from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE.
import { InvalidPayload } from './contract';
import { Refused, XingtuClient } from './client';

const USAGE = `usage: xingtu-ts <command> [arguments]
  publish '<PublishTaskRequest JSON>'              publish a task (update-with-start on publish)
  join <task_id> <creator_id>                      a creator joins the task
  report-mount <task_id> '<ReportMountRequest JSON>' the main site reports a mount
  report-conversions <task_id> '<ConversionBatch JSON>' a batch of conversions for one piece
  raise-dispute <task_id> <content_id> '<RaiseDisputeRequest JSON>'   the client or the creator disputes a fee
  resolve-dispute <task_id> <content_id> '<ResolveDisputeRequest JSON>' an operator resolves a dispute
  revoke-authorization <task_id> <creator_id> [content_id]
  task-state <task_id>                             the task's state
  content-state <task_id> <content_id>             one piece's state
  xg-order '<OrderRequest JSON>'                   order a Xingguang task (update-with-start on order)
  update <WorkflowType> '<ids JSON>' <name> ['<argument JSON>']   any update of the contract (schemas/index.md)
  signal <WorkflowType> '<ids JSON>' <name> ['<argument JSON>']   any signal
  query <WorkflowType> '<ids JSON>' <name>                        any query
  (ids JSON fills the workflow id template, e.g. '{"task_id": "t-1"}' for xg-task:{task_id})`;

type Command = (client: XingtuClient, args: string[]) => Promise<unknown>;

function json(text: string | undefined, what: string): Record<string, unknown> {
  if (text === undefined) throw new UsageError(`missing ${what} JSON`);
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`${what} is not JSON: ${(err as Error).message}`);
  }
}

function need(args: string[], count: number, names: string): void {
  if (args.length < count) throw new UsageError(`expected ${names}`);
}

class UsageError extends Error {}

const COMMANDS: Record<string, Command> = {
  publish: (c, a) => c.publishTask(json(a[0], 'PublishTaskRequest') as never),
  join: (c, a) => (need(a, 2, '<task_id> <creator_id>'), c.join(a[0], a[1])),
  'report-mount': (c, a) => (need(a, 1, '<task_id>'), c.reportMount(a[0], json(a[1], 'ReportMountRequest') as never)),
  'report-conversions': (c, a) =>
    (need(a, 1, '<task_id>'), c.reportConversions(a[0], json(a[1], 'ConversionBatch') as never)),
  'raise-dispute': (c, a) =>
    (need(a, 2, '<task_id> <content_id>'), c.raiseDispute(a[0], a[1], json(a[2], 'RaiseDisputeRequest') as never)),
  'resolve-dispute': (c, a) =>
    (need(a, 2, '<task_id> <content_id>'), c.resolveDispute(a[0], a[1], json(a[2], 'ResolveDisputeRequest') as never)),
  'revoke-authorization': (c, a) => (need(a, 2, '<task_id> <creator_id>'), c.revokeAuthorization(a[0], a[1], a[2])),
  'task-state': (c, a) => (need(a, 1, '<task_id>'), c.taskState(a[0])),
  // task-pieces <task_id> [page_size] [next_page_token]: one page of the task's pieces (visibility store).
  'task-pieces': (c, a) => (need(a, 1, '<task_id>'),
    c.taskPieces(a[0], a[1] ? Number(a[1]) : 100, a[2] ? Buffer.from(a[2], 'base64') : undefined).then((page) => ({
      pieces: page.pieces,
      nextPageToken: page.nextPageToken ? Buffer.from(page.nextPageToken).toString('base64') : null }))),
  'content-state': (c, a) => (need(a, 2, '<task_id> <content_id>'), c.contentState(a[0], a[1])),
  'xg-order': (c, a) => c.orderXingguangTask(json(a[0], 'OrderRequest') as never),
  update: (c, a) => generic(c, a, (type, id, name, args) => c.update(type, id, name, ...args)),
  signal: (c, a) => generic(c, a, (type, id, name, args) => c.signal(type, id, name, ...args)),
  query: (c, a) => generic(c, a, (type, id, name, args) => c.query(type, id, name, ...args)),
};

function generic(client: XingtuClient, a: string[],
  send: (type: string, id: string, name: string, args: unknown[]) => Promise<unknown>): Promise<unknown> {
  need(a, 3, '<WorkflowType> <ids JSON> <name>');
  const ids = json(a[1], 'ids') as Record<string, string>;
  const args = a.slice(3).map((text, i) => json(text, `argument ${i + 1}`));
  return send(a[0], client.contract.workflowId(a[0], ids), a[2], args);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const command = name === undefined ? undefined : COMMANDS[name];
  if (command === undefined || name === '--help' || name === '-h') {
    (command === undefined && name !== '--help' && name !== '-h' ? console.error : console.log)(USAGE);
    return name === '--help' || name === '-h' ? 0 : 1;
  }
  let client: XingtuClient | undefined;
  try {
    client = XingtuClient.connect();
    const answer = await command(client, args);
    console.log(JSON.stringify(answer ?? { ok: true }));
    return 0;
  } catch (err) {
    if (err instanceof Refused) {
      console.error(JSON.stringify({ kind: err.kind, reasons: err.reasons }));
      return 2;
    }
    if (err instanceof InvalidPayload) {
      console.error(JSON.stringify({ kind: 'InvalidPayload', schema: err.schemaFile, problems: err.problems }));
      return 3;
    }
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${USAGE}`);
      return 1;
    }
    console.error(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    return 1;
  } finally {
    await client?.close();
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
