/** What every repository shares about its rows. */

/** One page of a list, and whether more rows follow it. */
export interface Page<T> {
  items: T[];
  hasMore: boolean;
}

/**
 * Update times strictly increase, so two updates within one millisecond still produce
 * different etags.
 */
export function nextUpdateTime(current: { updateTime: Date }): number {
  return Math.max(Date.now(), current.updateTime.getTime() + 1);
}
