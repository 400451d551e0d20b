// Types for sinew-spine.

/** The message a server publishes for one record change. */
export interface ModelChangeMessage {
  type: 'create' | 'update' | 'destroy';
  /** A key of the `models` registry passed to sync(). */
  class: string;
  /** The record id (sent as a string; a number is accepted). */
  id: string | number;
  /** The record's attributes; required for create and update. */
  record?: Record<string, unknown>;
}

/** A parsed, checked change. */
export interface ParsedChange {
  type: 'create' | 'update' | 'destroy';
  className: string;
  id: string;
  record: Record<string, unknown> | null;
}

/** What applying a change did: create of an existing record is skipped, destroy of a missing one ignored. */
export type ChangeResult = 'created' | 'updated' | 'destroyed' | 'skipped' | 'ignored';

export interface AppliedChange extends ParsedChange {
  result: ChangeResult;
  /** The Pusher event name it arrived as. */
  event: string;
}

export type SinewSpineErrorCode =
  | 'malformed'
  | 'unknown_type'
  | 'unknown_class'
  | 'invalid_record'
  | 'apply_failed'
  | 'resync_failed';

/** Reported through the `error` event (and console.warn); the message was skipped. */
export interface SinewSpineError extends Error {
  name: 'SinewSpineError';
  code: SinewSpineErrorCode;
  event?: string;
  data?: unknown;
  model?: string;
  cause?: unknown;
}

/** The parts of a Spine model class the adapter uses. */
export interface SpineModelClass {
  new (attributes?: Record<string, unknown>): any;
  attributes?: string[];
  exists(id: string): boolean;
  find(id: string): any;
  fetch?(...args: unknown[]): unknown;
}

/** The parts of a pusher-js channel the adapter uses. */
export interface PusherChannelLike {
  name: string;
  bind(event: string, callback: (...args: any[]) => void): unknown;
  unbind(event?: string, callback?: (...args: any[]) => void): unknown;
  bind_global(callback: (event: string, data: any) => void): unknown;
  unbind_global(callback?: (event: string, data: any) => void): unknown;
}

/** The parts of a pusher-js client the adapter uses (pass a real `new Pusher(...)`). */
export interface PusherLike {
  subscribe(channelName: string): PusherChannelLike;
  unsubscribe(channelName: string): void;
  connection: {
    state: string;
    socket_id?: string;
    bind(event: string, callback: (...args: any[]) => void): unknown;
    unbind(event?: string, callback?: (...args: any[]) => void): unknown;
  };
}

/** Where an event stands in a channel's history on a Sinew server. */
export interface Position {
  epoch: string;
  offset: number;
}

/** What a reconnect recovered: the missed events went through the channel. */
export interface Recovered {
  epoch: string;
  offset: number;
  replayed: number;
}

/** A sinew-recover handle (sinew-spine bundles sinew-recover; see sdk/recover/README.md). */
export interface Recovery {
  on(event: 'recovery_failed', listener: (channelName: string, reason: string) => void): this;
  on(event: 'recovered', listener: (channelName: string, info: Recovered) => void): this;
  off(event: 'recovery_failed' | 'recovered', listener: (...args: any[]) => void): this;
  position(channelName: string): Position | null;
  stop(): void;
}

export interface SyncOptions {
  /** A pusher-js 8 client. Private and presence channels authorize through its channelAuthorization. */
  pusher: PusherLike;
  /** Channel name to subscribe to (e.g. 'private-observer'), or an already subscribed channel. */
  channel: string | PusherChannelLike;
  /** The only models messages may touch, by class name: { Page, Comment }. */
  models: Record<string, SpineModelClass>;
  /** Only these event names carry changes (default: every event except pusher:*, pusher_internal:*, client-*). */
  events?: string | string[];
  /**
   * Called for each model once the channel is subscribed again after a reconnect and what was
   * missed cannot be replayed (or after every reconnect with `recover: false`).
   * Default: Model.fetch({}, { clear: true }). `false` turns it off.
   */
  resync?: false | ((model: SpineModelClass, className: string) => unknown);
  /**
   * Replay what was missed while away from the channel's history on Sinew (default true, with the
   * bundled sinew-recover); or a handle from `recover(pusher)` to share; `false`: resync after
   * every reconnect, as sinew-spine 0.1 did.
   */
  recover?: boolean | Recovery;
  /** The Spine object (for Spine.Ajax); default: the imported `spine` package or window.Spine. */
  spine?: any;
  /** Set X-Pusher-Socket-ID on Spine.Ajax requests (default true). */
  ajaxHeader?: boolean;
  /** console.warn skipped messages (default true). */
  warn?: boolean;
}

export interface Sync {
  readonly channel: PusherChannelLike;
  /** The sinew-recover handle in use, or null with `recover: false`. */
  readonly recovery: Recovery | null;
  on(event: 'error', listener: (error: SinewSpineError) => void): this;
  on(event: 'change', listener: (change: AppliedChange) => void): this;
  on(event: 'resync', listener: (info: { model: string }) => void): this;
  /** After a reconnect, the missed changes were replayed and applied (no resync). */
  on(event: 'recovered', listener: (info: Recovered) => void): this;
  off(event: 'error' | 'change' | 'resync' | 'recovered', listener: (...args: any[]) => void): this;
  /** Applies one message as if it had arrived on the channel. */
  apply(data: ModelChangeMessage | string, eventName?: string): void;
  /** `{ 'X-Pusher-Socket-ID': id }` while connected, for requests not made by Spine.Ajax. */
  headers(): Record<string, string>;
  /** Runs the resync hook for every model now. */
  resync(): void;
  /** Stops listening; unsubscribes if sync() subscribed. */
  stop(): void;
}

export function sync(options: SyncOptions): Sync;
export function parseChange(data: unknown, models: Record<string, SpineModelClass>, eventName?: string): ParsedChange;
export function applyChange(change: ParsedChange, models: Record<string, SpineModelClass>, spine?: any): ChangeResult;
export function fetchModel(model: SpineModelClass): unknown;
/** sinew-recover's recover(), bundled: recovery on a pusher-js client (shared with sync()). */
export function recover(pusher: PusherLike & { send_event(eventName: string, data: any, channel?: string): boolean; channel(name: string): any }, options?: { timeoutMs?: number }): Recovery;

declare const SinewSpine: {
  sync: typeof sync;
  parseChange: typeof parseChange;
  applyChange: typeof applyChange;
  fetchModel: typeof fetchModel;
  recover: typeof recover;
};
export default SinewSpine;
