/** One test's or hook's duration against its timeout, as the timing reporter records it. */
export interface Timing {
  title: string;
  file: string;
  ms: number;
  timeoutMs: number;
}
