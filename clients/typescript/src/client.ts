// A small client for services written in TypeScript: the same calls as starter/client.py, with every payload
// checked against the published JSON Schemas before it is sent and every answer checked when it comes back.
import {
  Client,
  Connection,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure, defineSearchAttributeKey } from '@temporalio/common';
import { Contract } from './contract';
import type {
  ConversionBatch,
  JoinResult,
  MountedContentState,
  MountResult,
  MountTaskState,
  PublicationResult,
  PublishTaskRequest,
  ReportMountRequest,
  RevocationResult,
} from './types';

export const MOUNT_TASK = 'MountTaskWorkflow';
export const MOUNTED_CONTENT = 'MountedContentWorkflow';

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
    const input = { task_id: request.task_id };
    const [startArg] = this.contract.args(MOUNT_TASK, undefined, MOUNT_TASK, [input]);
    const [arg] = this.contract.args(MOUNT_TASK, 'updates', 'publish', [request]);
    const workflowId = this.taskWorkflowId(request.task_id);
    const startWorkflowOperation = new WithStartWorkflowOperation(MOUNT_TASK, {
      workflowId,
      taskQueue: this.taskQueue,
      args: [startArg],
      workflowIdConflictPolicy: 'USE_EXISTING',
      // A draft that was never published ends as failed, so its id may be used again; a published task's never.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      typedSearchAttributes: [
        { key: TASK_ID, value: request.task_id },
        { key: CLIENT_ID, value: request.client_id },
      ],
      staticSummary: `authorized-mount task ${request.task_id}`,
    });
    try {
      const answer = await this.client.workflow.executeUpdateWithStart('publish', {
        args: [arg],
        startWorkflowOperation,
      });
      return this.contract.result<PublicationResult>(MOUNT_TASK, 'updates', 'publish', answer);
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw refusal(err);
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        // The task has closed: its result carries the publication it had, if any.
        const closed = this.contract.result<{ publication: PublicationResult | null }>(
          MOUNT_TASK, undefined, MOUNT_TASK, await this.client.workflow.getHandle(workflowId).result());
        if (!closed.publication) throw new Refused('PublicationRefused', [`task ${request.task_id} was never published`]);
        return closed.publication;
      }
      throw err;
    }
  }

  join(taskId: string, creatorId: string): Promise<JoinResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'join', { creator_id: creatorId });
  }

  reportMount(taskId: string, request: ReportMountRequest): Promise<MountResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'report_mount', request);
  }

  revokeContent(taskId: string, creatorId: string, contentId: string): Promise<RevocationResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'revoke_content',
      { creator_id: creatorId, content_id: contentId });
  }

  revokeAll(taskId: string, creatorId: string): Promise<RevocationResult> {
    return this.update(MOUNT_TASK, this.taskWorkflowId(taskId), 'revoke_all', { creator_id: creatorId });
  }

  /** Fire-and-forget revocation (a creator's app): no contentId means all of the creator's pieces. */
  revokeAuthorization(taskId: string, creatorId: string, contentId?: string): Promise<void> {
    const payload = contentId === undefined ? { creator_id: creatorId } : { creator_id: creatorId, content_id: contentId };
    return this.signal(MOUNT_TASK, this.taskWorkflowId(taskId), 'revoke_authorization', payload);
  }

  /** one batch of conversions, sent to the piece of content it belongs to; a repeated event_id counts once. */
  reportConversions(taskId: string, batch: ConversionBatch): Promise<void> {
    return this.signal(MOUNTED_CONTENT, this.contentWorkflowId(taskId, batch.content_id), 'report_conversions', batch);
  }

  taskState(taskId: string): Promise<MountTaskState> {
    return this.query(MOUNT_TASK, this.taskWorkflowId(taskId), 'state');
  }

  contentState(taskId: string, contentId: string): Promise<MountedContentState> {
    return this.query(MOUNTED_CONTENT, this.contentWorkflowId(taskId, contentId), 'state');
  }

  /** Any update of the contract by name, validated both ways. */
  async update<T>(workflowType: string, workflowId: string, name: string, ...args: unknown[]): Promise<T> {
    const checked = this.contract.args(workflowType, 'updates', name, args);
    try {
      const answer = await this.client.workflow.getHandle(workflowId).executeUpdate(name, { args: checked as [unknown, ...unknown[]] });
      return this.contract.result<T>(workflowType, 'updates', name, answer);
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw refusal(err);
      throw err;
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
