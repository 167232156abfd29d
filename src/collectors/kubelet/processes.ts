import type { Logger } from '../../core/logger.js';
import type { Batch } from '../../core/store.js';
import { attributeProcesses, type GpuProcess, type Learned, NOTHING_LEARNED } from './attribute.js';
import { type CgroupIdentity, parseCgroup, readProcCgroup } from './cgroup.js';
import type { GpuAllocation } from './match.js';
import type { GpuProcessList } from '../../ports/index.js';

/**
 * `--kubelet.process-attribution`: reads the cgroup of every GPU process NVML lists and
 * writes `ds_gpu_process_info`, one series per process on each GPU. Keeps what it learned
 * about pod UIDs for the next round.
 */
export class ProcessAttribution {
  private learned: Learned = NOTHING_LEARNED;
  private warnedUnreadable = false;

  constructor(private readonly procPath: string, private readonly logger: Logger) {}

  async write(batch: Batch, processes: GpuProcessList, allocations: readonly GpuAllocation[]): Promise<void> {
    // Without hostPID, a GPU process's pid may name another process of this container's own
    // pid namespace; a pod UID equal to our own is that mistake, never a GPU process.
    const self = await readProcCgroup(this.procPath, 'self');
    const selfUid = self.ok ? parseCgroup(self.text)?.podUid : undefined;
    const identities = new Map<number, CgroupIdentity | undefined>();
    let unreadable = 0;
    for (const g of processes.gpus) {
      for (const pid of g.pids) {
        if (identities.has(pid)) continue;
        const r = await readProcCgroup(this.procPath, pid);
        if (!r.ok) unreadable++;
        const id = r.ok ? parseCgroup(r.text) : undefined;
        identities.set(pid, id && id.podUid !== selfUid ? id : undefined);
      }
    }
    const list: GpuProcess[] = processes.gpus.flatMap((g) =>
      g.pids.map((pid) => {
        const id = identities.get(pid);
        return { gpu: g.gpu, uuid: g.uuid, pid, podUid: id?.podUid ?? '', containerId: id?.containerId ?? '' };
      }),
    );
    const { rows, learned } = attributeProcesses(list, processes.gpus, allocations, this.learned);
    this.learned = learned;
    for (const r of rows) batch.info('ds_gpu_process_info', { ...r });
    const allUnreadable = identities.size > 0 && unreadable === identities.size;
    if (allUnreadable && !this.warnedUnreadable) {
      this.logger.warn('process attribution: no GPU process has a readable cgroup file; without hostPID the exporter cannot see other pods\' processes, so they stay unresolved', { proc_path: this.procPath, processes: identities.size });
    } else if (!allUnreadable && this.warnedUnreadable) {
      this.logger.info('process attribution: GPU process cgroups readable again', { proc_path: this.procPath });
    }
    this.warnedUnreadable = allUnreadable;
  }
}
