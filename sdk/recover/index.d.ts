// Types for sinew-recover.

/** Where an event stands in a channel's history on a Sinew server. */
export interface Position {
  /** Names the history the offset counts in; a new epoch means the old history is gone. */
  epoch: string;
  /** Grows by one per event on the channel, from 1. */
  offset: number;
}

/**
 * Why a channel could not be recovered. The server's reasons (`epoch_changed`, `too_old`,
 * `too_many`, `history_off`), plus:
 * - `no_position`: subscribed again without having seen any event with a position (a channel
 *   without history, or one that had no event yet), so there was nothing to resume from;
 * - `timeout`: no answer to the resume within `timeoutMs`.
 */
export type RecoveryFailure = 'epoch_changed' | 'too_old' | 'too_many' | 'history_off' | 'no_position' | 'timeout' | (string & {});

export interface Recovered {
  /** The epoch the channel's positions count in. */
  epoch: string;
  /** The offset of the last event handed to the application. */
  offset: number;
  /** How many missed events were handed to the channel's callbacks. */
  replayed: number;
}

export interface RecoverOptions {
  /** How long to wait for the server's answer to a resume, in ms (default 10000). */
  timeoutMs?: number;
}

/** The parts of a pusher-js 8 client sinew-recover uses (pass a real `new Pusher(...)`). */
export interface PusherLike {
  subscribe(channelName: string): any;
  send_event(eventName: string, data: any, channel?: string): boolean;
  channel(name: string): any;
  allChannels?(): any[];
  connection: {
    state: string;
    bind(event: string, callback: (...args: any[]) => void): unknown;
    unbind(event?: string, callback?: (...args: any[]) => void): unknown;
  };
}

export interface Recovery {
  /**
   * `recovery_failed`: the channel was subscribed again but what was missed could not be
   * replayed; reload its state from your backend. The channel's own callbacks also get the event
   * `sinew:recovery_failed` with `{ reason }`.
   */
  on(event: 'recovery_failed', listener: (channelName: string, reason: RecoveryFailure) => void): this;
  /** `recovered`: the missed events were handed to the channel's callbacks. */
  on(event: 'recovered', listener: (channelName: string, info: Recovered) => void): this;
  off(event: 'recovery_failed' | 'recovered', listener: (...args: any[]) => void): this;
  /** The position of the last event handed to the application on that channel, or null. */
  position(channelName: string): Position | null;
  /** Stops this handle; when every handle on the client has stopped, pusher-js is as before. */
  stop(): void;
}

/**
 * Starts recovering missed events on a pusher-js client. Calling it again for the same client
 * gives another handle to the same recovery.
 */
export function recover(pusher: PusherLike, options?: RecoverOptions): Recovery;

declare const SinewRecover: { recover: typeof recover };
export default SinewRecover;
