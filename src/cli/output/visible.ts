/** C0 controls, DEL and C1 controls: what a terminal acts on instead of showing. */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeControl(char: string): string {
  return NAMED[char] ?? `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/**
 * Text for one line of a terminal, every control character escaped (ESC as \x1b, a newline as
 * \n): what the audit trail holds came partly from peers (a principal, an error message), and
 * must neither drive the operator's terminal nor forge a line of its own.
 */
export function visible(text: string): string {
  return text.replace(CONTROLS, escapeControl);
}

/** The same for a message of several lines: its newlines kept, every other control escaped. */
export function visibleLines(text: string): string {
  return text.split('\n').map(visible).join('\n');
}
