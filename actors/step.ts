// A pure transition function like xstate's `transition()`, without its cost: xstate builds a
// throwaway actor for every call (~40 µs); these machines spawn nothing and send to nobody, so
// one inert scope per machine serves every call. Same results: the whole test suite runs on it.
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
  return (snapshot, event) => {
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
