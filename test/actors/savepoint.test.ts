// An engine rolled back to a savepoint is exactly the engine it was: what a worker relies on to
// apply a batch again after another worker changed an agent or seats the batch used.
import fc from 'fast-check';
import t from 'tap';
import { Engine } from '../../actors/engine.ts';
import { MemoryWorld } from '../../actors/world.ts';
import { CommandMaker, opArb, settings } from '../helpers/ops.ts';

t.test(
  'rollback() puts back the state begin() marked, whatever was applied in between',
  async (t) => {
    let rolledBack = 0;
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 5, maxLength: 40, size: 'max' }),
        fc.array(opArb, { minLength: 1, maxLength: 15, size: 'max' }),
        (before, batch) => {
          const world = new MemoryWorld();
          const engine = new Engine(settings, { world });
          const maker = new CommandMaker();
          let now = Date.UTC(2026, 0, 5, 9);
          const run = (ops: typeof before) => {
            for (const op of ops) {
              if (op.op === 'advance') now += op.ms;
              const ids = engine.conversationIds();
              const cmd = maker.toCommand(op, ids, (id) => engine.conversation(id)?.context);
              if (cmd) engine.step(cmd, now);
            }
          };
          run(before);
          const conversations = () =>
            JSON.stringify({ ...engine.state(), agents: null, seats: null, blockedVisitors: null });
          const marked = conversations();
          engine.begin();
          run(batch);
          engine.rollback();
          rolledBack++;
          if (conversations() !== marked) throw new Error('the engine differs from its savepoint');
        },
      ),
      { numRuns: 300, seed: 77 },
    );
    t.equal(rolledBack, 300);
  },
);
