// A pure transition function like xstate's `transition()`, without its cost: xstate builds a
// throwaway actor for every call (~40 µs); these machines spawn nothing and send to nobody, so
// one inert scope per machine serves every call. Same results: the whole test suite runs on it.
//
// Most steps of a running conversation are transitions without a target (a message added, a
// presence noted): they only assign to the context and emit. For those the stepper lets xstate
// choose the transition (`getTransitionData`: guards, bubbling, wildcards), then resolves its
// actions itself, as xstate's microstep would, without rebuilding the snapshot at every assign
// (value, tags, node sets): the engine's step for a message went from ~9.5 to ~4.5 µs, with ~5 KB
// less garbage (bench/README.md, 2026-11-25). Whatever it does not know (a target, eventless
// transitions, several transitions, raise, spawn, check, custom actions) goes to xstate.
// test/actors/step.test.ts runs random commands both ways and compares every step.
import {
  type AnyActorScope,
  type AnyStateMachine,
  createEmptyActor,
  type EventFromLogic,
  type SnapshotFrom,
} from 'xstate';

export type ExecutableAction = { readonly type: string; readonly params?: unknown };

export type Stepper<M extends AnyStateMachine> = (
  snapshot: SnapshotFrom<M>,
  event: EventFromLogic<M>,
) => [SnapshotFrom<M>, ExecutableAction[]];

let fastPaths = true;

/** Turns the stepper's own path for target-less transitions off (true) or on, for tests. */
export function onlyXState(only: boolean): void {
  fastPaths = !only;
}

/** Returns `(snapshot, event) => [next snapshot, actions to execute]` for `machine`. */
export function stepper<M extends AnyStateMachine>(machine: M): Stepper<M> {
  const self = createEmptyActor();
  let collected: ExecutableAction[] = [];
  const scope = {
    self,
    defer: () => {},
    id: '',
    logger: () => {},
    sessionId: '',
    stopChild: () => {},
    system: self.system,
    emit: () => {},
    actionExecutor: (action: ExecutableAction) => {
      collected.push(action);
    },
  } as unknown as AnyActorScope;
  const fast = new TargetlessStep(machine, scope);
  return (snapshot, event) => {
    const quick = fastPaths ? fast.step(snapshot, event) : undefined;
    if (quick) return quick as [SnapshotFrom<M>, ExecutableAction[]]; // its contexts are plain
    collected = [];
    const next = machine.transition(snapshot, event, scope) as SnapshotFrom<M>;
    // xstate's assign builds the context with Object.assign, which leaves V8 a slow dictionary
    // object: a plain copy takes ~600 B less per conversation (measured on 100,000). Only a
    // changed context is copied, so an unchanged one keeps its identity.
    const after = next as unknown as { context: object };
    if (after.context !== (snapshot as unknown as { context: object }).context) {
      after.context = { ...after.context };
    }
    return [next, collected];
  };
}

// What the fast path reads of xstate 5's snapshots, transitions and built-in actions.
interface Snapshot {
  readonly status: string;
  readonly context: object;
  readonly _nodes: readonly { readonly always?: readonly unknown[] }[];
}
interface Transition {
  readonly target?: readonly unknown[];
  readonly actions: readonly unknown[];
}
type ActionRef = string | { readonly type: string; readonly params?: unknown } | ActionFn;
type ActionFn = ((...args: never[]) => unknown) & {
  readonly type?: string;
  readonly assignment?: unknown;
  readonly event?: unknown;
  readonly collect?: (args: object, params: unknown) => void;
};

/** An action collected by `enqueue.assign` or `enqueue.emit`, with its argument. */
class Queued {
  readonly kind: 'assign' | 'emit';
  readonly arg: unknown;
  constructor(kind: 'assign' | 'emit', arg: unknown) {
    this.kind = kind;
    this.arg = arg;
  }
}

/** Thrown inside the fast path when it meets something only xstate knows how to do. */
const XSTATE = Symbol('xstate');
const toXState = (): never => {
  throw XSTATE;
};

/** One target-less transition resolved the way xstate's microstep resolves it. */
class TargetlessStep {
  readonly #machine: AnyStateMachine;
  readonly #scope: AnyActorScope;
  readonly #actions: Record<string, unknown>;
  /** The actions `enqueue` collects: one list per call of an `enqueueActions` collector. */
  #queue: unknown[] = [];
  readonly #enqueue: ((action: unknown) => void) & Record<string, unknown>;

  constructor(machine: AnyStateMachine, scope: AnyActorScope) {
    this.#machine = machine;
    this.#scope = scope;
    this.#actions = machine.implementations.actions as Record<string, unknown>;
    const enqueue = ((action: unknown) => {
      this.#queue.push(action);
    }) as ((action: unknown) => void) & Record<string, unknown>;
    // (xstate's enqueue makes an assign or emit action of its argument: the same, resolved below.)
    enqueue.assign = (assignment: unknown) => {
      this.#queue.push(new Queued('assign', assignment));
    };
    enqueue.emit = (eventOrExpr: unknown) => {
      this.#queue.push(new Queued('emit', eventOrExpr));
    };
    for (const other of ['cancel', 'raise', 'sendTo', 'sendParent', 'spawnChild', 'stopChild']) {
      enqueue[other] = toXState;
    }
    this.#enqueue = enqueue;
  }

  /** The next snapshot and the actions to execute, or undefined when xstate must do the step. */
  step(
    snapshot: unknown,
    event: { readonly type: string },
  ): [unknown, ExecutableAction[]] | undefined {
    const s = snapshot as Snapshot;
    if (s.status !== 'active' || event.type.startsWith('xstate.')) return undefined;
    // (Looked at each time: a cache keyed by the node sets would cost ~60 B per conversation.)
    for (const n of s._nodes) if (n.always !== undefined && n.always.length > 0) return undefined;
    const transitions = this.#machine.getTransitionData(snapshot as never, event as never) as
      | readonly Transition[]
      | undefined;
    if (!transitions || transitions.length === 0) return [snapshot, []];
    const t = transitions[0]!;
    if (transitions.length > 1 || (t.target !== undefined && t.target.length > 0)) return undefined;
    const emitted: ExecutableAction[] = [];
    let context: object;
    try {
      context = this.#run(t.actions, s.context, event, emitted);
    } catch (error) {
      if (error === XSTATE) return undefined;
      throw error;
    }
    return [context === s.context ? snapshot : withContext(s, context), emitted];
  }

  /** xstate's resolveAndExecuteActionsWithContext, for assign, emit and enqueueActions. */
  #run(
    actions: readonly unknown[],
    start: object,
    event: object,
    emitted: ExecutableAction[],
  ): object {
    let context = start;
    for (const a of actions as readonly (ActionRef | Queued)[]) {
      if (a instanceof Queued) {
        const args = { context, event, self: this.#scope.self, system: this.#scope.system };
        if (a.kind === 'assign') context = assigned(a.arg, args, undefined);
        else emitted.push(emitOf(a.arg, args, undefined));
        continue;
      }
      const inline = typeof a === 'function';
      const impl = (inline ? a : this.#actions[typeof a === 'string' ? a : a.type]) as
        | ActionFn
        | undefined;
      const params =
        inline || typeof a === 'string' || !('params' in a)
          ? undefined
          : typeof a.params === 'function'
            ? (a.params as (args: object) => unknown)({ context, event })
            : a.params;
      const args = { context, event, self: this.#scope.self, system: this.#scope.system };
      switch (typeof impl === 'function' ? impl.type : undefined) {
        case 'xstate.assign':
          context = assigned(impl!.assignment, args, params);
          break;
        case 'xstate.emit':
          emitted.push(emitOf(impl!.event, args, params));
          break;
        case 'xstate.enqueueActions': {
          this.#queue = [];
          const { self, system } = this.#scope;
          impl!.collect!(
            { context, event, enqueue: this.#enqueue, check: toXState, self, system },
            params,
          );
          context = this.#run(this.#queue, context, event, emitted);
          break;
        }
        default:
          return toXState(); // a custom action, or one xstate resolves in a way not done here
      }
    }
    return context;
  }
}

/** The fields of xstate 5's machine snapshots (createMachineSnapshot), in its order. */
const SNAPSHOT_FIELDS = [
  'status',
  'output',
  'error',
  'machine',
  'context',
  '_nodes',
  'value',
  'tags',
  'children',
  'historyValue',
  'matches',
  'hasTag',
  'can',
  'getMeta',
  'toJSON',
].join();
let knownShape: boolean | undefined;

/**
 * The snapshot with another context, the rest shared (value, tags and nodes are the same, the
 * state being the same). Written out as xstate writes it: a spread copy of a snapshot takes ~24 B
 * more per conversation (measured on 100,000). A snapshot of another shape (another xstate) is
 * spread.
 */
function withContext(s: Snapshot, context: object): unknown {
  knownShape ??= Object.keys(s).join() === SNAPSHOT_FIELDS;
  if (!knownShape) return { ...s, context };
  const o = s as unknown as Record<string, unknown>;
  return {
    status: o.status,
    output: o.output,
    error: o.error,
    machine: o.machine,
    context,
    _nodes: o._nodes,
    value: o.value,
    tags: o.tags,
    children: o.children,
    historyValue: o.historyValue,
    matches: o.matches,
    hasTag: o.hasTag,
    can: o.can,
    getMeta: o.getMeta,
    toJSON: o.toJSON,
  };
}

/** xstate's resolveEmit: the action that emits the event (or what its expression returns). */
function emitOf(
  eventOrExpr: unknown,
  args: { context: object; event: object; self: unknown; system: unknown },
  params: unknown,
): ExecutableAction {
  const event = typeof eventOrExpr === 'function' ? eventOrExpr(args, params) : eventOrExpr;
  return { type: 'xstate.emit', params: { event } };
}

/**
 * xstate's resolveAssign: the context with the assignment's values (spawning left to xstate).
 * xstate copies with Object.assign, which leaves V8 a slow dictionary object; a spread of the
 * context and of the (known) fields assigned gives a plain one at once (see `stepper`).
 */
function assigned(
  assignment: unknown,
  args: { context: object; event: object; self: unknown; system: unknown },
  params: unknown,
): object {
  // (Built field by field: a spread followed by new fields is slow in V8, see actors/engine.ts.)
  const { context, event, self, system } = args;
  const assignArgs = { context, event, spawn: toXState, self, system };
  let partial: Record<string, unknown>;
  if (typeof assignment === 'function') {
    partial = assignment(assignArgs, params) as Record<string, unknown>;
  } else {
    partial = {};
    const props = assignment as Record<string, unknown>;
    for (const key of Object.keys(props)) {
      const p = props[key];
      partial[key] = typeof p === 'function' ? p(assignArgs, params) : p;
    }
  }
  return { ...args.context, ...partial };
}
