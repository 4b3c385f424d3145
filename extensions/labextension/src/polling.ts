/** Jobs the server runs for the panel (preprocessing, rankings), followed until they end. */
import { useEffect } from 'react';

import { requestAPI } from './api';

/**
 * Poll a live ``job`` every 2 s at ``endpoint/ID`` until it is done or failed; a request that fails
 * (a lost job: the server restarted) marks it failed with the message and ``failed``'s fields.
 */
export function usePolling<T extends { id: string; state: string; error: string }>(
  endpoint: string,
  job: T | null,
  setJob: (job: T) => void,
  failed: Partial<T> = {}
): void {
  useEffect(() => {
    if (!job || ['done', 'failed'].includes(job.state)) {
      return;
    }
    const timer = setTimeout(async () => {
      try {
        setJob(await requestAPI<T>(`${endpoint}/${encodeURIComponent(job.id)}`));
      } catch (err) {
        setJob({ ...job, ...failed, state: 'failed', error: (err as Error).message });
      }
    }, 2000);
    return () => clearTimeout(timer);
  }, [job]);
}
