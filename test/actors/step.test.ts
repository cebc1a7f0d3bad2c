// The stepper's own path for target-less transitions (actors/step.ts) against xstate's: the same
// random command sequences, applied to one simulation stepping with it and to one stepping through
// xstate alone, give the same events and the same state after every step.
import fc from 'fast-check';
import t from 'tap';
import { initialTransition } from 'xstate';
import { createConversationMachine } from '../../actors/conversation.ts';
import type { Command } from '../../actors/events.ts';
import { Simulation } from '../../actors/simulation.ts';
import { onlyXState, stepper } from '../../actors/step.ts';
import { CommandMaker, opArb, settings } from '../helpers/ops.ts';

/** Runs `withFastPath`, then `xstateAlone` with the stepper's own path off. */
function both<T>(withFastPath: () => T, xstateAlone: () => T): [T, T] {
  onlyXState(false);
  const a = withFastPath();
  onlyXState(true);
  try {
    return [a, xstateAlone()];
  } finally {
    onlyXState(false);
  }
}

t.test(
  'the same events and state as xstate alone, after every step of 500 sequences',
  async (t) => {
    let steps = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 5, maxLength: 80, size: 'max' }), (ops) => {
        const fast = new Simulation(settings);
        const plain = new Simulation(settings);
        const maker = new CommandMaker();
        const applied: Command[] = [];
        for (const op of ops) {
          let events: [unknown, unknown];
          if (op.op === 'advance') {
            events = both(
              () => fast.advance(op.ms),
              () => plain.advance(op.ms),
            );
          } else {
            const cmd =
              op.op === 'duplicate'
                ? applied[applied.length - op.back]
                : maker.toCommand(
                    op,
                    fast.engine.conversationIds(),
                    (c) => fast.engine.conversation(c)?.context,
                  );
            if (!cmd) continue;
            if (op.op !== 'duplicate') applied.push(cmd);
            events = both(
              () => fast.run(cmd),
              () => plain.run(cmd),
            );
          }
          const [a, b] = events.map((e) => JSON.stringify(e));
          if (a !== b) throw new Error(`events differ after ${JSON.stringify(op)}:\n${a}\n${b}`);
          const [sa, sb] = [fast, plain].map((s) => JSON.stringify(s.engine.state()));
          if (sa !== sb)
            throw new Error(`state differs after ${JSON.stringify(op)}:\n${sa}\n${sb}`);
          steps++;
        }
      }),
      { numRuns: 500, seed: Number(process.env.PARLEY_PROPERTY_SEED ?? 20261125) },
    );
    t.ok(steps > 5_000, `compared ${steps} steps`);
  },
);

t.test(
  'a target-less transition takes the fast path; xstate alone rebuilds the snapshot',
  async (t) => {
    const machine = createConversationMachine(settings);
    const step = stepper(machine);
    const [start] = initialTransition(machine, {
      id: 'c-1',
      visitor: 'v-1',
      rule: 'direct',
      visitorOnline: true,
      at: 1_000,
    });
    const event = {
      type: 'SetVisitorPresence',
      id: 'p-1',
      conversation: 'c-1',
      online: false,
      at: 2_000,
    } as const;
    const [fast, fastActions] = step(start, event as never);
    onlyXState(true);
    const [plain, plainActions] = step(start, event as never);
    onlyXState(false);
    t.equal(fast.value, start.value, 'the fast path keeps the state value');
    t.not(plain.value, start.value, 'xstate builds a new one');
    t.same(fast.value, plain.value);
    t.same(fast.context, plain.context);
    t.equal(fast.context.visitorOnline, false);
    t.same(
      fastActions.map((a) => a.params),
      plainActions.map((a) => a.params),
      'the same events emitted',
    );
  },
);
