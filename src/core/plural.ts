/**
 * "1 event", "2 events": counts in messages read as sentences, where "event(s)" reads as a form
 * to fill in. `plural` for nouns that do not take an s.
 */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}
