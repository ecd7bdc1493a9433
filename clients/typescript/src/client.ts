// A small client for services written in TypeScript: the same calls as starter/client.py, with every payload
// checked against the published JSON Schemas before it is sent and every answer checked when it comes back.
import {
  Client,
  Connection,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure, defineSearchAttributeKey, type SearchAttributePair } from '@temporalio/common';
import { Contract, type Json } from './contract';
import type {
  ContentResult,
  ConversionBatch,
  DisputeReceipt,
  DisputeResolution,
  LateBatch,
  JoinResult,
  MountedContentView,
  MountResult,
  MountTaskView,
  PublicationResult,
  PublishTaskRequest,
  RaiseDisputeRequest,
  ReportMountRequest,
  ResolveDisputeRequest,
  RevocationResult,
} from './types';

export const MOUNT_TASK = 'MountTaskWorkflow';
// temporal.api.enums.v1.WorkflowExecutionStatus COMPLETED, and the gRPC status NOT_FOUND.
const WORKFLOW_COMPLETED = 2;
const grpcStatus = { NOT_FOUND: 5 };
export const MOUNTED_CONTENT = 'MountedContentWorkflow';
export const XINGGUANG_TASK = 'XingguangTaskWorkflow';

/** The retryable refusal of a task draining before continue-as-new (workflows/contract/names.py). */
export const CONTINUE_AS_NEW_DUE = 'ContinueAsNewDue';
const DRAIN_RETRY_MS = 60_000;

const TASK_ID = defineSearchAttributeKey('task_id', 'KEYWORD');
const CLIENT_ID = defineSearchAttributeKey('client_id', 'KEYWORD');

/** A business refusal: `kind` is the error type (e.g. PublicationRefused, JoinRefused), `reasons` every reason. */
export class Refused extends Error {
  constructor(readonly kind: string, readonly reasons: string[]) {
    super(`${kind}: ${reasons.join('; ')}`);
    this.name = 'Refused';
  }
}

function refusal(err: WorkflowUpdateFailedError): Refused {
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    const details = cause.details?.[0] as { reasons?: unknown } | undefined;
    const reasons = Array.isArray(details?.reasons) ? details.reasons.map(String) : [cause.message];
    return new Refused(cause.type ?? 'Rejected', reasons);
  }
  return new Refused('Rejected', [cause?.message ?? err.message]);
}

/** An instant as people read it, in business time (UTC+08:00): 2026-12-09 10:00:00 +08:00 (rules/clock.py). */
export function businessTime(instant: string): string {
  const shifted = new Date(Date.parse(instant) + 8 * 3600_000).toISOString();
  return `${shifted.slice(0, 10)} ${shifted.slice(11, 19)} +08:00`;
}

export interface StartOptions {
  searchAttributes: SearchAttributePair[];
  staticSummary: string;
}

/** What an operator filters a new task by in the UI: its task id and client id. */
function startOptions(request: { task_id: string; client_id: string }, staticSummary: string): StartOptions {
  return {
    searchAttributes: [
      { key: TASK_ID, value: request.task_id },
      { key: CLIENT_ID, value: request.client_id },
    ],
    staticSummary,
  };
}

export interface ConnectOptions {
  address?: string;
  namespace?: string;
  taskQueue?: string;
  schemasDir?: string;
}

export class XingtuClient {
  constructor(
    readonly client: Client,
    readonly contract: Contract = new Contract(),
    readonly taskQueue: string = contract.index.task_queue,
  ) {}

  /** Connects to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / TEMPORAL_TASK_QUEUE unless given. The connection is made
   *  on the first call, so a payload that fails its schema is refused without touching the network. */
  static connect(options: ConnectOptions = {}): XingtuClient {
    const contract = new Contract(options.schemasDir);
    const address = options.address ?? process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
    const namespace = options.namespace ?? process.env.TEMPORAL_NAMESPACE ?? contract.index.namespace;
    const connection = Connection.lazy({ address });
    const taskQueue = options.taskQueue ?? process.env.TEMPORAL_TASK_QUEUE ?? contract.index.task_queue;
    return new XingtuClient(new Client({ connection, namespace }), contract, taskQueue);
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }

  taskWorkflowId(taskId: string): string {
    return this.contract.workflowId(MOUNT_TASK, { task_id: taskId });
  }

  contentWorkflowId(taskId: string, contentId: string): string {
    return this.contract.workflowId(MOUNTED_CONTENT, { task_id: taskId, content_id: contentId });
  }

  /** Publishes a task (update-with-start on `publish`): answers once the checks and the freeze are done.
   *  Publishing the same task again returns the first answer and freezes nothing more. */
  async publishTask(request: PublishTaskRequest): Promise<PublicationResult> {
    const workflowId = this.taskWorkflowId(request.task_id);
    try {
      return await this.updateWithStart<PublicationResult>(MOUNT_TASK, workflowId, { task_id: request.task_id },
        'publish', request, startOptions(request, `authorized-mount task ${request.task_id}`));
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      // The task has closed: its result carries the publication it had, if any.
      const closed = this.contract.result<{ publication: PublicationResult | null }>(
        MOUNT_TASK, undefined, MOUNT_TASK, await this.client.workflow.getHandle(workflowId).result());
      if (!closed.publication) throw new Refused('PublicationRefused', [`task ${request.task_id} was never published`]);
      return closed.publication;
    }
  }

  /** XG-1: orders a Xingguang task (update-with-start on `order`); the same order again answers the first. */
  async orderXingguangTask<T = Json>(request: Json & { task_id: string; client_id: string }): Promise<T> {
    try {
      return await this.updateWithStart<T>(XINGGUANG_TASK, this.contract.workflowId(XINGGUANG_TASK, { task_id: request.task_id }),
        { task_id: request.task_id }, 'order', request, startOptions(request, `Xingguang task ${request.task_id}`));
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new Refused('OrderRefused', [`task ${request.task_id} is already closed`]);
      }
      throw err;
    }
  }

  /** Starts the workflow if it is not running (USE_EXISTING) and sends it an update in the same call. Input, update
   *  argument and answer are validated. A draft that failed may be started again; a completed workflow may not
   *  (WorkflowExecutionAlreadyStartedError). */
  async updateWithStart<T>(workflowType: string, workflowId: string, startInput: unknown, update: string,
    arg: unknown, options: StartOptions): Promise<T> {
    const [input] = this.contract.args(workflowType, undefined, workflowType, [startInput]);
    const [checked] = this.contract.args(workflowType, 'updates', update, [arg]);
    const startWorkflowOperation = new WithStartWorkflowOperation(workflowType, {
      workflowId,
      taskQueue: this.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      typedSearchAttributes: options.searchAttributes,
      staticSummary: options.staticSummary,
      workflowTaskTimeout: '60s', // as starter/client.py TASK_WORKFLOW_TASK_TIMEOUT: a long run replayed whole
    });
    try {
      const answer = await this.client.workflow.executeUpdateWithStart(update, { args: [checked], startWorkflowOperation });
      return this.contract.result<T>(workflowType, 'updates', update, answer);
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw refusal(err);
      throw err;
    }
  }

  join(taskId: string, creatorId: string): Promise<JoinResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'join', { creator_id: creatorId });
  }

  reportMount(taskId: string, request: ReportMountRequest): Promise<MountResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'report_mount', request);
  }

  /** `revokedAt`: the creator app's instant (ISO 8601 with its offset), within 5 minutes of its receipt (AM-14);
   * left out, the platform's. */
  revokeContent(taskId: string, creatorId: string, contentId: string, revokedAt?: string): Promise<RevocationResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'revoke_content',
      { creator_id: creatorId, content_id: contentId, ...(revokedAt === undefined ? {} : { revoked_at: revokedAt }) });
  }

  revokeAll(taskId: string, creatorId: string, revokedAt?: string): Promise<RevocationResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'revoke_all',
      { creator_id: creatorId, ...(revokedAt === undefined ? {} : { revoked_at: revokedAt }) });
  }

  /** Fire-and-forget revocation (a creator's app): no contentId means all of the creator's pieces. */
  revokeAuthorization(taskId: string, creatorId: string, contentId?: string, revokedAt?: string): Promise<void> {
    const payload = {
      creator_id: creatorId,
      ...(contentId === undefined ? {} : { content_id: contentId }),
      ...(revokedAt === undefined ? {} : { revoked_at: revokedAt }),
    };
    return this.signal(MOUNT_TASK, this.taskWorkflowId(taskId), 'revoke_authorization', payload);
  }

  /** one batch of conversions, sent to the piece of content it belongs to; a repeated event_id counts once.
   *  a batch for a piece that has settled changes nothing: the answer is a LateBatch ("late: settled at ...")
   *  for the caller to log (the Python CLI records it in the ledger's database). Content never mounted: NotFound. */
  async reportConversions(taskId: string, batch: ConversionBatch): Promise<LateBatch | undefined> {
    try {
      await this.signal(MOUNTED_CONTENT, this.contentWorkflowId(taskId, batch.content_id), 'report_conversions', batch);
      return undefined;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    const settled = await this.settledPiece(taskId, batch.content_id);
    return { task_id: taskId, content_id: batch.content_id, event_id: batch.event_id, count: batch.count,
      occurred_at: batch.occurred_at, cheating: batch.cheating ?? false, settled_at: settled.settled_at,
      note: `late: settled at ${businessTime(settled.settled_at)}` };
  }

  /** AM-11: the client or the creator disputes a piece's fee. After the piece settled: DisputeRefused, with the
   *  window's closing instant, as the workflow answers while it runs. */
  async raiseDispute(taskId: string, contentId: string, request: RaiseDisputeRequest): Promise<DisputeReceipt> {
    try {
      return await this.update(MOUNTED_CONTENT, this.contentWorkflowId(taskId, contentId), 'raise_dispute', request);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    const settled = await this.settledPiece(taskId, contentId);
    throw new Refused('DisputeRefused', [`the publicity window of content ${contentId} closed at `
      + `${businessTime(settled.publicity_window_closes_at ?? settled.settled_at)}: the fee is deemed accepted and `
      + `can no longer be disputed (settled at ${businessTime(settled.settled_at)}: ${settled.fee_fen} fen)`]);
  }

  /** AM-17: an operator resolves an open dispute; a settled piece has none open (ResolutionRefused). */
  async resolveDispute(taskId: string, contentId: string, request: ResolveDisputeRequest): Promise<DisputeResolution> {
    try {
      return await this.update(MOUNTED_CONTENT, this.contentWorkflowId(taskId, contentId), 'resolve_dispute', request);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    const settled = await this.settledPiece(taskId, contentId);
    throw new Refused('ResolutionRefused', [`dispute_id: ${request.dispute_id} is not open: content ${contentId} `
      + `settled at ${businessTime(settled.settled_at)} (${settled.fee_fen} fen)`]);
  }

  /** The result of a piece whose workflow has completed; NotFound when it never existed, NotRunning when it
   *  closed otherwise (terminated). Temporal answers "not found" for both a closed and a missing workflow. */
  async settledPiece(taskId: string, contentId: string): Promise<ContentResult> {
    const workflowId = this.contentWorkflowId(taskId, contentId);
    const handle = this.client.workflow.getHandle(workflowId);
    let status: number;
    try {
      // Read raw: describe() decodes the search attributes too, which fails on some servers' datetime values.
      const described = await this.client.workflowService.describeWorkflowExecution(
        { namespace: this.client.options.namespace, execution: { workflowId } });
      status = Number(described.workflowExecutionInfo?.status ?? 0);
    } catch (err) {
      if ((err as { code?: number }).code === grpcStatus.NOT_FOUND) {
        throw new Refused('NotFound', [`${workflowId} not found: it was never started`]);
      }
      throw err;
    }
    if (status !== WORKFLOW_COMPLETED) {
      throw new Refused('NotRunning', [`${workflowId} is not running: its status is ${status} (2 is completed)`]);
    }
    const result = await handle.result();
    return this.contract.result<ContentResult>(MOUNTED_CONTENT, undefined, MOUNTED_CONTENT, result);
  }

  taskState(taskId: string): Promise<MountTaskView> {
    return this.query(MOUNT_TASK, this.taskWorkflowId(taskId), 'state');
  }

  /** A task's pieces page by page, from the visibility store (a task's `state` answer keeps only counts: its
   * register is in the ledger's database, which `python -m starter pieces` reads). Pass the returned
   * nextPageToken to get the next page; none when this was the last. */
  async taskPieces(taskId: string, pageSize = 100, nextPageToken?: Uint8Array
  ): Promise<{ pieces: { contentId: string; workflowId: string; running: boolean }[]; nextPageToken?: Uint8Array }> {
    const query = `WorkflowType = '${MOUNTED_CONTENT}' AND task_id = '${taskId.replace(/'/g, "\\'")}'`;
    const page = await this.client.workflowService.listWorkflowExecutions(
      { namespace: this.client.options.namespace, query, pageSize, nextPageToken });
    const pieces = (page.executions ?? []).map((e) => {
      const workflowId = e.execution?.workflowId ?? '';
      const prefix = `mount-content:${taskId}:`;
      const contentId = workflowId.startsWith(prefix) ? workflowId.slice(prefix.length) : workflowId;
      return { workflowId, contentId, running: Number(e.status ?? 0) === 1 };
    });
    const token = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
    return { pieces, nextPageToken: token };
  }

  contentState(taskId: string, contentId: string): Promise<MountedContentView> {
    return this.query(MOUNTED_CONTENT, this.contentWorkflowId(taskId, contentId), 'state');
  }

  /** Any update of the contract by name, validated both ways. A task about to continue as new refuses new joins
   * and mounts for a moment with ContinueAsNewDue; that refusal is retried (50 ms doubling to 1 s, 60 s at most)
   * and the call lands on the new run, as the Python client does. */
  async update<T>(workflowType: string, workflowId: string, name: string, ...args: unknown[]): Promise<T> {
    const checked = this.contract.args(workflowType, 'updates', name, args);
    const giveUpAt = Date.now() + DRAIN_RETRY_MS;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      try {
        const answer = await this.client.workflow.getHandle(workflowId).executeUpdate(name, { args: checked as [unknown, ...unknown[]] });
        return this.contract.result<T>(workflowType, 'updates', name, answer);
      } catch (err) {
        if (!(err instanceof WorkflowUpdateFailedError)) throw err;
        const refused = refusal(err);
        if (refused.kind !== CONTINUE_AS_NEW_DUE || Date.now() + delay > giveUpAt) throw refused;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** Any signal of the contract by name, validated before it is sent. */
  async signal(workflowType: string, workflowId: string, name: string, ...args: unknown[]): Promise<void> {
    const checked = this.contract.args(workflowType, 'signals', name, args);
    await this.client.workflow.getHandle(workflowId).signal(name, ...checked);
  }

  /** Any query of the contract by name; the answer is validated against its schema. */
  async query<T>(workflowType: string, workflowId: string, name: string, ...args: unknown[]): Promise<T> {
    const checked = this.contract.args(workflowType, 'queries', name, args);
    const answer = await this.client.workflow.getHandle(workflowId).query(name, ...checked);
    return this.contract.result<T>(workflowType, 'queries', name, answer);
  }
}
