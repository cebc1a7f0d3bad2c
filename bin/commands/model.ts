// `parley model`: the actors' state machines as Markdown, one Mermaid diagram and two tables per
// machine, generated from the machine definitions themselves so that docs/model.md cannot drift.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { agentMachine } from '../../actors/agent.ts';
import { createConversationMachine } from '../../actors/conversation.ts';
import { routingGroupMachine } from '../../actors/routing-group.ts';
import type { Settings } from '../../actors/settings.ts';

type Transition =
  AnyStateNode['transitions'] extends Map<string, infer T>
    ? T extends readonly (infer U)[]
      ? U
      : never
    : never;

/** The machines docs/model.md describes, in the order it describes them. */
export function machines(): { title: string; source: string; machine: AnyStateMachine }[] {
  // The conversation machine reads its bot questions and messages from the settings; its shape
  // does not depend on them, so empty settings draw the same chart.
  const settings: Settings = { groups: [], rules: [], agents: [], cannedAnswers: [] };
  return [
    {
      title: 'Conversation',
      source: '`createConversationMachine` in actors/conversation.ts',
      machine: createConversationMachine(settings),
    },
    {
      title: 'Routing group',
      source: '`routingGroupMachine` in actors/routing-group.ts',
      machine: routingGroupMachine,
    },
    { title: 'Agent', source: '`agentMachine` in actors/agent.ts', machine: agentMachine },
  ];
}

/** The generated part of docs/model.md. */
export function modelMarkdown(): string {
  const parts = machines().map(({ title, source, machine }) =>
    [
      `### ${title}`,
      '',
      `Generated from ${source}.`,
      '',
      '```mermaid',
      mermaid(machine),
      '```',
      '',
      statesTable(machine),
      '',
      transitionsTable(machine),
    ].join('\n'),
  );
  return `${parts.join('\n\n')}\n`;
}

export const BEGIN_MARKER = '<!-- BEGIN GENERATED -->';
export const END_MARKER = '<!-- END GENERATED -->';

/** The text between the markers of a document, or undefined when it has no such part. */
export function generatedPart(doc: string): string | undefined {
  const begin = doc.indexOf(BEGIN_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (begin < 0 || end < begin) return undefined;
  return doc.slice(begin + BEGIN_MARKER.length, end).replace(/^\n/, '');
}

/** The document with the text between its markers replaced by `generated`. */
export function withGeneratedPart(doc: string, generated: string): string {
  const begin = doc.indexOf(BEGIN_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (begin < 0 || end < begin) throw new Error(`no ${BEGIN_MARKER} … ${END_MARKER} part`);
  return `${doc.slice(0, begin + BEGIN_MARKER.length)}\n${generated}${doc.slice(end)}`;
}

export function registerModel(program: Command): Command {
  return program
    .command('model')
    .description('print the state machines as Markdown with Mermaid diagrams')
    .option(
      '--update <file>',
      `replace the part of <file> between ${BEGIN_MARKER} and ${END_MARKER} instead of printing (npm run docs:model does this for docs/model.md)`,
    )
    .addHelpText(
      'after',
      `
Prints the state machines of actors/ as Markdown: one Mermaid diagram and two tables per machine,
generated from the machine definitions.`,
    )
    .action(async (options: { update?: string }) => {
      process.exitCode = await runModel(options);
    });
}

export async function runModel({ update }: { update?: string }): Promise<number> {
  if (update === undefined) {
    process.stdout.write(modelMarkdown());
    return 0;
  }
  const doc = readFileSync(update, 'utf8');
  if (generatedPart(doc) === undefined) {
    process.stderr.write(`parley model: ${update} has no ${BEGIN_MARKER} … ${END_MARKER} part\n`);
    return 1;
  }
  const next = withGeneratedPart(doc, modelMarkdown());
  if (next !== doc) writeFileSync(update, next);
  process.stdout.write(`${update}: ${next === doc ? 'already up to date' : 'updated'}\n`);
  return 0;
}

// ─── Walking a machine ───────────────────────────────────────────────────────────────────────

/** Every state node below the root, parents before children, in definition order. */
export function stateNodes(machine: AnyStateMachine): AnyStateNode[] {
  const out: AnyStateNode[] = [];
  const walk = (node: AnyStateNode) => {
    for (const child of Object.values(node.states) as AnyStateNode[]) {
      out.push(child);
      walk(child);
    }
  };
  walk(machine.root);
  return out;
}

/** A state's dotted path below the root: `bot.asking`. */
export function statePath(node: AnyStateNode): string {
  return node.path.join('.');
}

/** A state's id in the Mermaid diagram: its path with `_` for `.` (Mermaid ids take no dots). */
export function mermaidId(node: AnyStateNode): string {
  return node.path.length === 0 ? ANY_STATE : node.path.join('_');
}

/** The diagram's stand-in for the machine itself: transitions defined at the top apply in any state. */
const ANY_STATE = 'any_state';

/** One transition of a state, with its guard as text. */
interface Described {
  readonly event: string;
  readonly t: Transition;
  /** Its own guard; `otherwise` for an unguarded one after guarded ones for the same event. */
  readonly guard: string;
  /** When it is taken: its own guard, or for an `otherwise`, that none of the earlier ones held. */
  readonly condition: string;
}

/** A state's transitions in the order xstate tries them (the first whose guard holds is taken). */
function transitionsOf(node: AnyStateNode): Described[] {
  const out: Described[] = [];
  const add = (event: string, ts: readonly Transition[]) => {
    const earlier: string[] = [];
    for (const t of ts) {
      const own = guardText(t.guard);
      if (own === '' && earlier.length > 0) {
        out.push({ event, t, guard: 'otherwise', condition: earlier.map(negate).join(' and ') });
      } else {
        out.push({ event, t, guard: own, condition: own });
      }
      if (own !== '') earlier.push(own);
    }
  };
  add('always', (node.always ?? []) as Transition[]);
  for (const [event, ts] of node.transitions as Map<string, Transition[]>) add(event, ts);
  return out;
}

function negate(guard: string): string {
  const simple = /^not (\w+)$/.exec(guard);
  if (simple) return simple[1]!;
  const group = /^not \((.*)\)$/.exec(guard);
  if (group && !group[1]!.includes('('))
    return group[1]!.includes(' or ') ? `(${group[1]})` : group[1]!;
  return `not ${wrap(guard)}`;
}

function nameOf(x: unknown): string {
  if (typeof x === 'string') return x;
  if (typeof x === 'function') {
    const f = x as { name?: string; type?: string };
    return f.type ?? (f.name || 'inline');
  }
  if (x && typeof x === 'object' && 'type' in x) return String((x as { type: unknown }).type);
  return 'inline';
}

function paramsOf(x: unknown): string {
  if (!x || typeof x !== 'object' || !('params' in x)) return '';
  const params = (x as { params: unknown }).params;
  if (params === undefined || typeof params === 'function') return '';
  const values = params !== null && typeof params === 'object' ? Object.values(params) : [params];
  return `(${values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')})`;
}

/** A guard as people read it: `fromTheVisitor and not visitorIsBlocked`. */
export function guardText(guard: unknown): string {
  if (guard === undefined) return '';
  if (typeof guard === 'function') {
    const g = guard as { name?: string; guards?: unknown[] };
    if (g.guards && (g.name === 'and' || g.name === 'or')) {
      return g.guards.map((x) => wrap(guardText(x))).join(` ${g.name} `);
    }
    if (g.guards && g.name === 'not') return `not ${wrap(guardText(g.guards[0]))}`;
  }
  return `${nameOf(guard)}${paramsOf(guard)}`;
}

const wrap = (s: string) => (/ (and|or) /.test(s) ? `(${s})` : s);

function actionText(action: unknown): string {
  return `${nameOf(action)}${paramsOf(action)}`;
}

function actionsText(actions: readonly unknown[]): string {
  return actions.map(actionText).join(', ');
}

/** A transition that only refuses the event: it changes nothing and shows in the tables only. */
function isRefusal(t: Transition): boolean {
  return (
    t.target === undefined &&
    t.actions.length > 0 &&
    t.actions.every((a) => /^(reject|refuse)/.test(nameOf(a)))
  );
}

function label(event: string, guard: string): string {
  return guard ? `${event} [${guard}]` : event;
}

// ─── Mermaid ─────────────────────────────────────────────────────────────────────────────────

/**
 * A `stateDiagram-v2` of the machine: compound states drawn as boxes, every transition that
 * changes state as an arrow labelled with its event and guard, and transitions that stay in the
 * state (other than refusals) listed inside it. Transitions defined on the machine itself start
 * from a box named "any state".
 */
export function mermaid(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  const root = machine.root as AnyStateNode;
  const edges = new Map<AnyStateNode, string[]>();
  const addEdge = (from: AnyStateNode, to: AnyStateNode, text: string) => {
    const owner = commonAncestor(from, to);
    const list = edges.get(owner) ?? [];
    list.push(`${mermaidId(from)} --> ${mermaidId(to)} : ${text}`);
    edges.set(owner, list);
  };
  const stays = new Map<AnyStateNode, string[]>();
  for (const node of [root, ...stateNodes(machine)]) {
    for (const { event, t, condition } of transitionsOf(node)) {
      if (t.target && t.target.length > 0) {
        for (const target of t.target as AnyStateNode[])
          addEdge(node, target, label(event, condition));
      } else if (!isRefusal(t) && (t.actions.length > 0 || t.guard !== undefined)) {
        const list = stays.get(node) ?? [];
        list.push(label(event, condition));
        stays.set(node, list);
      }
    }
  }

  const rootStays = stays.get(root) ?? [];
  const rootEdges = [...edges.values()].flat().some((e) => e.startsWith(`${ANY_STATE} `));
  if (rootStays.length > 0 || rootEdges) {
    lines.push(`  state "any state" as ${ANY_STATE}`);
    for (const s of rootStays) lines.push(`  ${ANY_STATE} : ${s}`);
  }

  const draw = (node: AnyStateNode, depth: number) => {
    const pad = '  '.repeat(depth);
    const initial = node.initial?.target?.[0] as AnyStateNode | undefined;
    if (initial) lines.push(`${pad}[*] --> ${mermaidId(initial)}`);
    for (const child of Object.values(node.states) as AnyStateNode[]) {
      const id = mermaidId(child);
      const own = stays.get(child) ?? [];
      if (Object.keys(child.states).length > 0) {
        // Mermaid takes no description on a box of states: a note lists what it does in place.
        lines.push(`${pad}state ${id} {`);
        draw(child, depth + 1);
        lines.push(`${pad}}`);
        if (own.length > 0) {
          lines.push(`${pad}note right of ${id}`, `${pad}  in ${child.key}, without leaving it:`);
          for (const s of own) lines.push(`${pad}  ${s}`);
          lines.push(`${pad}end note`);
        }
      } else {
        // The name declared first: Mermaid would otherwise title the box with its first line.
        lines.push(`${pad}state "${child.key}" as ${id}`);
        for (const s of own) lines.push(`${pad}${id} : ${s}`);
      }
      if (child.type === 'final') lines.push(`${pad}${id} --> [*]`);
    }
    for (const e of edges.get(node) ?? []) lines.push(`${pad}${e}`);
  };
  draw(root, 1);
  return lines.join('\n');
}

/** The deepest state that contains both, where Mermaid wants the arrow between them written. */
function commonAncestor(a: AnyStateNode, b: AnyStateNode): AnyStateNode {
  const chain = (n: AnyStateNode) => {
    const out: AnyStateNode[] = [];
    for (let x: AnyStateNode | undefined = n.parent; x; x = x.parent) out.push(x);
    return out;
  };
  const ofB = new Set(chain(b));
  return chain(a).find((x) => ofB.has(x)) ?? (a.machine.root as AnyStateNode);
}

// ─── Tables ──────────────────────────────────────────────────────────────────────────────────

const cell = (s: string) => (s === '' ? '' : `\`${s.replaceAll('|', '\\|')}\``);

function statesTable(machine: AnyStateMachine): string {
  const root = machine.root as AnyStateNode;
  const rows = [
    '| State | Starts in | On entry | On exit |',
    '| --- | --- | --- | --- |',
    `| (the machine) | ${cell(initialOf(root))} | ${cell(actionsText(root.entry))} | ${cell(actionsText(root.exit))} |`,
  ];
  for (const node of stateNodes(machine)) {
    rows.push(
      `| ${cell(statePath(node))} | ${cell(initialOf(node))} | ${cell(actionsText(node.entry))} | ${cell(actionsText(node.exit))} |`,
    );
  }
  return rows.join('\n');
}

function initialOf(node: AnyStateNode): string {
  const target = node.initial?.target?.[0] as AnyStateNode | undefined;
  return target ? statePath(target) : '';
}

function transitionsTable(machine: AnyStateMachine): string {
  const root = machine.root as AnyStateNode;
  const rows = [
    '| In state | Event | Guard | Goes to | Actions |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const node of [...stateNodes(machine), root]) {
    const where = node === root ? 'any state' : cell(statePath(node));
    for (const { event, t, guard } of transitionsOf(node)) {
      const to = t.target?.map((x) => statePath(x as AnyStateNode)).join(', ');
      const eventCell =
        event === '*' ? '`*` (any other)' : event === 'always' ? '(at once)' : cell(event);
      rows.push(
        `| ${where} | ${eventCell} | ${guard === 'otherwise' ? guard : cell(guard)} | ${to ? cell(to) : 'stays'} | ${t.actions.length > 0 ? cell(actionsText(t.actions)) : 'nothing'} |`,
      );
    }
  }
  return rows.join('\n');
}
