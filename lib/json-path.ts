// Field paths in the messages that name what was wrong in a config file or a command:
// ajv's JSON pointers turned into `groups[1].snooze.default`.

export type Segment = string | number;

/** `/groups/1/snooze` → `['groups', 1, 'snooze']` (JSON pointer escapes undone). */
export function pointerToPath(pointer: string): Segment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((token) => (/^(0|[1-9]\d*)$/.test(token) ? Number(token) : token));
}

/** `groups[1].snooze.default`; keys that are not plain names are quoted: `attributes["a.b"]`. */
export function formatPath(path: readonly Segment[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}
