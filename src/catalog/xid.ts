/**
 * NVIDIA's XID catalog for Ampere and newer data-center GPUs, as data: for each XID its
 * driver mnemonic and the catalog's "Resolution Bucket (Immediate Action)", lowercased.
 * Source: NVIDIA, "Analyzing Xid Errors with the Xid Catalog"
 * (https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html, Table 1 Xids).
 * The action of an XID is fixed for a release of the exporter, so the `action` label of
 * `ds_gpu_xid_errors_total` never splits one XID's counter into two series.
 */

/**
 * The catalog's immediate-action buckets: `restart_app` (the application died; the GPU is
 * fine), `reset_gpu`, `restart_bm` (reboot the bare-metal node), `restart_vm`, `ignore`,
 * `contact_support`, `check_mechanicals`, the catalog's workflows (`workflow_xid_45`,
 * `workflow_xid_48`, `workflow_nvlink_err`, `workflow_nvlink5_err`), `xid_154` (the driver's
 * recovery action says what to do) and `unknown` for an XID the table does not hold.
 */
export type XidAction =
  | 'restart_app' | 'reset_gpu' | 'restart_bm' | 'restart_vm' | 'ignore' | 'contact_support' | 'check_mechanicals'
  | 'workflow_xid_45' | 'workflow_xid_48' | 'workflow_nvlink_err' | 'workflow_nvlink5_err' | 'xid_154' | 'unknown';

/** One row of the catalog. */
export interface XidEntry {
  readonly xid: number;
  readonly mnemonic: string;
  readonly action: Exclude<XidAction, 'unknown'>;
}

const row = (xid: number, mnemonic: string, action: XidEntry['action']): XidEntry => ({ xid, mnemonic, action });

/** The XIDs NVIDIA lists for A100/H100/B100/GB200, with their immediate action. */
export const XID_CATALOG: readonly XidEntry[] = [
  row(8, 'ROBUST_CHANNEL_FIFO_ERROR_IDLE_TIMEOUT', 'restart_app'),
  row(11, 'ROBUST_CHANNEL_GR_ERROR_MISSING_HW', 'restart_app'),
  row(13, 'ROBUST_CHANNEL_GR_EXCEPTION', 'restart_app'),
  row(14, 'ROBUST_CHANNEL_FAKE_ERROR', 'ignore'),
  row(25, 'ROBUST_CHANNEL_GR_ILLEGAL_NOTIFY', 'restart_app'),
  row(31, 'ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT', 'restart_app'),
  row(32, 'ROBUST_CHANNEL_PBDMA_ERROR', 'restart_app'),
  row(37, 'ROBUST_CHANNEL_FECS_ERR_UNIMP_FIRMWARE_METHOD', 'ignore'),
  row(38, 'ROBUST_CHANNEL_FECS_ERR_WATCHDOG_TIMEOUT', 'ignore'),
  row(39, 'ROBUST_CHANNEL_CE0_ERROR', 'restart_app'),
  row(40, 'ROBUST_CHANNEL_CE1_ERROR', 'restart_app'),
  row(41, 'ROBUST_CHANNEL_CE2_ERROR', 'restart_app'),
  row(43, 'ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR', 'ignore'),
  row(44, 'ROBUST_CHANNEL_GR_FAULT_DURING_CTXSW', 'ignore'),
  row(45, 'ROBUST_CHANNEL_PREEMPTIVE_REMOVAL', 'workflow_xid_45'),
  row(46, 'ROBUST_CHANNEL_GPU_TIMEOUT_ERROR', 'reset_gpu'),
  row(48, 'ROBUST_CHANNEL_GPU_ECC_DBE', 'workflow_xid_48'),
  row(54, 'SILENT_RUNNING_PWR_REDUCED_CLOCKING', 'check_mechanicals'),
  row(60, 'ROBUST_CHANNEL_SEC2_ERROR', 'restart_app'),
  // Listed for no current product; the catalog's bucket for those is CONTACT_SUPPORT.
  row(61, 'PMU_BREAKPOINT', 'contact_support'),
  row(62, 'PMU_HALT_ERROR', 'reset_gpu'),
  row(63, 'INFOROM_DRAM_RETIREMENT_EVENT', 'ignore'),
  row(64, 'INFOROM_DRAM_RETIREMENT_FAILURE', 'reset_gpu'),
  row(66, 'ROBUST_CHANNEL_FECS_ERR_REG_ACCESS_VIOLATION', 'ignore'),
  row(67, 'ROBUST_CHANNEL_FECS_ERR_VERIF_VIOLATION', 'ignore'),
  row(68, 'ROBUST_CHANNEL_NVDEC0_ERROR', 'restart_app'),
  row(69, 'ROBUST_CHANNEL_GR_CLASS_ERROR', 'restart_app'),
  row(74, 'NVLINK_ERROR', 'workflow_nvlink_err'),
  row(79, 'ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS', 'restart_bm'),
  row(80, 'PBDMA_PUSHBUFFER_CRC_MISMATCH', 'restart_app'),
  row(92, 'EXCESSIVE_SBE_INTERRUPTS', 'ignore'),
  row(94, 'ROBUST_CHANNEL_CONTAINED_ERROR', 'restart_app'),
  row(95, 'ROBUST_CHANNEL_UNCONTAINED_ERROR', 'reset_gpu'),
  row(106, 'SMBPBI_TEST_MESSAGE', 'ignore'),
  row(107, 'SMBPBI_TEST_MESSAGE_SILENT', 'ignore'),
  row(108, 'NVLINK_REMOTE_TRANSLATION_ERROR', 'ignore'),
  row(109, 'ROBUST_CHANNEL_CTXSW_TIMEOUT_ERROR', 'reset_gpu'),
  row(110, 'SEC_FAULT_ERROR', 'reset_gpu'),
  row(119, 'GSP_RPC_TIMEOUT', 'reset_gpu'),
  row(120, 'GSP_ERROR', 'reset_gpu'),
  row(121, 'C2C_ERROR', 'ignore'),
  row(136, 'ALI_TRAINING_FAIL', 'reset_gpu'),
  row(137, 'NVLINK_PRIV_ERR', 'ignore'),
  row(140, 'UNRECOVERABLE_ECC_ERROR_ESCAPE', 'reset_gpu'),
  row(141, 'ROBUST_CHANNEL_FAST_PATH_ERROR', 'ignore'),
  row(143, 'GPU_INIT_ERROR', 'reset_gpu'),
  row(144, 'NVLINK_SAW_ERROR', 'workflow_nvlink5_err'),
  row(145, 'NVLINK_RLW_ERROR', 'workflow_nvlink5_err'),
  row(146, 'NVLINK_TLW_ERROR', 'workflow_nvlink5_err'),
  row(147, 'NVLINK_TREX_ERROR', 'workflow_nvlink5_err'),
  row(148, 'NVLINK_NVLPW_CTRL_ERROR', 'workflow_nvlink5_err'),
  row(149, 'NVLINK_NETIR_ERROR', 'workflow_nvlink5_err'),
  row(150, 'NVLINK_MSE_ERROR', 'workflow_nvlink5_err'),
  row(151, 'ROBUST_CHANNEL_KEY_ROTATION_ERROR', 'restart_vm'),
  row(154, 'GPU_RECOVERY_ACTION_CHANGED', 'xid_154'),
  row(155, 'NVLINK_SW_DEFINED_ERROR', 'reset_gpu'),
  row(156, 'RESOURCE_RETIREMENT_EVENT', 'reset_gpu'),
  row(157, 'RESOURCE_RETIREMENT_FAILURE', 'ignore'),
  row(158, 'GPU_FATAL_TIMEOUT', 'reset_gpu'),
];

const byXid = new Map(XID_CATALOG.map((e) => [e.xid, e]));

/** The catalog's immediate action for an XID; `unknown` for one the table does not hold. */
export function xidAction(xid: number): XidAction {
  return byXid.get(xid)?.action ?? 'unknown';
}

/** The catalog row of an XID, if it has one. */
export function xidEntry(xid: number): XidEntry | undefined {
  return byXid.get(xid);
}
