// docs/model.md shows the machines as they are: its generated part is exactly what `parley model`
// prints now, so changing a machine without regenerating the page (npm run docs:model) fails here.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { type AnyStateNode, and, not, setup } from 'xstate';
import {
  generatedPart,
  machines,
  mermaid,
  mermaidId,
  modelMarkdown,
  stateNodes,
  statePath,
} from '../../bin/commands/model.ts';

const DOC = new URL('../../docs/model.md', import.meta.url);

t.test('docs/model.md holds what parley model generates from the machines now', async (t) => {
  const part = generatedPart(readFileSync(DOC, 'utf8'));
  t.ok(part !== undefined, 'docs/model.md has its BEGIN/END GENERATED markers');
  t.equal(
    part,
    modelMarkdown(),
    'docs/model.md is out of date with actors/: run `npm run docs:model` and commit the result',
  );
});

t.test('the conversation diagram shows every state of the conversation machine', async (t) => {
  const [conversation] = machines();
  const diagram = mermaid(conversation!.machine);
  const declared = (path: string) => {
    const id = path.replaceAll('.', '_');
    const leaf = path.split('.').at(-1);
    return diagram.includes(`state "${leaf}" as ${id}\n`) || diagram.includes(`state ${id} {`);
  };
  for (const path of [
    'bot',
    'bot.asking',
    'bot.escalating',
    'bot.parked',
    'queued',
    'assigned',
    'snoozed',
    'closed',
  ]) {
    t.ok(declared(path), `${path} is in the diagram`);
  }
  for (const node of stateNodes(conversation!.machine)) {
    t.ok(declared(statePath(node)), `and so is every other state: ${statePath(node)}`);
  }
});

t.test('every diagram draws each change of state with its event and guard', async (t) => {
  for (const { title, machine } of machines()) {
    const diagram = mermaid(machine);
    const nodes: AnyStateNode[] = [machine.root, ...stateNodes(machine)];
    for (const node of nodes) {
      const transitions = [
        ...(node.always ?? []).map((tr) => ['always', tr] as const),
        ...[...node.transitions].flatMap(([event, trs]) => trs.map((tr) => [event, tr] as const)),
      ];
      for (const [event, tr] of transitions) {
        for (const target of tr.target ?? []) {
          const arrow = `${mermaidId(node)} --> ${mermaidId(target)} : ${event}`;
          t.ok(diagram.includes(arrow), `${title}: ${arrow}`);
        }
      }
    }
  }
});

t.test(
  'arrows read as event [guard], and a fallback as the guards before it failing',
  async (t) => {
    const machine = setup({
      types: { events: {} as { type: 'go' } },
      guards: { ready: () => true, allowed: () => true, late: () => false },
    }).createMachine({
      initial: 'idle',
      states: {
        idle: {
          on: {
            go: [
              { guard: not('allowed'), actions: [] },
              { guard: and(['ready', not('late')]), target: 'busy' },
              { target: 'done' },
            ],
          },
        },
        busy: {},
        done: { type: 'final' },
      },
    });
    const diagram = mermaid(machine);
    t.match(diagram, /idle --> busy : go \[ready and not late\]/);
    t.match(diagram, /idle --> done : go \[allowed and not \(ready and not late\)\]/);
    t.match(diagram, /done --> \[\*\]/);
  },
);
