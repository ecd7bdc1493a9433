// TypeScript shapes of the messages this client sends and reads. The schemas in ../../schemas are the authority:
// every payload is validated against them at run time (contract.ts), so a drift shows up as InvalidPayload.
// Money is integer fen (`*_fen`), instants are ISO-8601 strings with an offset (`*_at`).

export interface BillingRule {
  conversion_event?: string | null;
  price_fen?: number | null;
}

export interface PublishTaskRequest {
  task_id: string;
  client_id: string;
  task_type?: string | null;
  settlement_method?: string | null;
  task_name?: string | null;
  task_icon_url?: string | null;
  header_image_url?: string | null;
  component_id?: string | null;
  budget_fen?: number | null;
  period_start_at?: string | null;
  period_end_at?: string | null;
  billing_rule?: BillingRule | null;
  public_days?: number | null;
}

export interface PublicationResult {
  task_id: string;
  published_at: string;
  budget_fen: number;
  frozen_fen: number;
  platform_fee_fen: number;
  freeze_transfer_id: string;
}

export interface JoinResult {
  creator_id: string;
  joined_at: string;
  already_joined: boolean;
  payee_account: string;
}

export interface ReportMountRequest {
  content_id: string;
  creator_id: string;
  mounted_at: string;
}

export interface MountResult {
  content_id: string;
  content_workflow_id: string;
  billing_period_ends_at: string;
}

export interface ConversionBatch {
  event_id: string;
  content_id: string;
  count: number;
  occurred_at: string;
  cheating?: boolean;
}

export interface RevocationResult {
  creator_id: string;
  revoked_at: string;
  content_ids: string[];
}

/** The money picture (workflows/contract/money.py): the same names in `state`, `ledger` and this client.
 * frozen = accrued + platform_fee_on_accrued + paid + platform_fees + refunded + refund_to_come, to the fen. */
export interface TaskMoney {
  frozen_fen: number;
  accrued_fen: number;
  platform_fee_on_accrued_fen: number;
  paid_fen: number;
  platform_fees_fen: number;
  held_fen: number;
  refunded_fen: number;
  refund_to_come_fen: number;
  refund_expected_at: string | null;
  refund_waits_for: string | null;
  as_of: string | null;
}

export interface PieceMoney {
  accrued_fen: number;
  held_fen: number;
  paid_fen: number;
  platform_fee_fen: number;
  payee_account: string;
}

/** What a workflow waits for, its next deadline, and its escalations (with why and what to do). */
export interface Progress {
  waiting_for: string;
  next_deadline: string | null;
  next_deadline_at: string | null;
  escalations: { what: string; since: string | null; why: string; to_do: string }[];
}

/** The `state` query of MountTaskWorkflow (contract/views.py; the schema has every field). Pieces are listed by
 * `taskPieces`. */
export interface MountTaskView {
  kind: 'mount-task';
  task_id: string;
  stage: 'draft' | 'published' | 'ended' | 'refunded' | 'not_published';
  client_id: string | null;
  terms: PublishTaskRequest | null;
  budget_fen: number;
  period_start_at: string | null;
  period_end_at: string | null;
  ended_at: string | null;
  end_reason: 'period_over' | 'budget_used_up' | 'cancelled' | null;
  money: TaskMoney;
  pieces: { mounted: number; open: number; settled: number; closed: number; held: number };
  creators_joined: number;
  progress: Progress;
  [field: string]: unknown;
}

/** The `state` query of MountedContentWorkflow. */
export interface MountedContentView {
  kind: 'mounted-content';
  task_id: string;
  content_id: string;
  creator_id: string;
  stage: 'mounted' | 'publicity' | 'disputed' | 'held' | 'settled' | 'closed';
  counted_conversions: number;
  fee_fen: number;
  billing_period_ends_at: string;
  publicity_window_closes_at: string;
  money: PieceMoney;
  progress: Progress;
  [field: string]: unknown;
}

export interface RaiseDisputeRequest {
  raised_by: 'client' | 'creator';
  party_id: string;
  reason: string;
}

export interface DisputeReceipt {
  dispute_id: string;
  raised_at: string;
  fee_fen: number;
  publicity_window_closes_at: string;
  resolution_due_at: string | null;
  escalated: boolean;
}

export interface ResolveDisputeRequest {
  dispute_id: string;
  operator_id: string;
  amount_fen: number;
  note: string;
}

export interface DisputeResolution {
  dispute_id: string;
  resolved_at: string;
  fee_before_fen: number;
  amount_fen: number;
  budget_adjustment_fen: number;
}

export interface ContentResult {
  task_id: string;
  content_id: string;
  stage: string;
  counted_conversions: number;
  fee_fen: number;
  platform_fee_fen: number;
  payee_account: string;
  settled_at: string;
  publicity_window_closes_at?: string | null;
}

/** the answer to a conversion batch reported after its piece settled (workflows/contract LateBatch). */
export interface LateBatch {
  task_id: string;
  content_id: string;
  event_id: string;
  count: number;
  occurred_at: string;
  cheating: boolean;
  settled_at: string;
  note: string;
}
