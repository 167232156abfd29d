/**
 * Peak dense (no 2:4 sparsity) tensor-core throughput per GPU model, in FLOP/s, from
 * NVIDIA's datasheets. The datasheets print the sparse figure for BF16 and FP8 with a
 * footnote ("with sparsity"); the dense figure is half of it. Keys are the names NVML
 * and nvidia-smi report (`ds_gpu_info{name}`). A model missing here has no peak, so
 * model FLOPs utilization is absent for it rather than computed against a guess.
 */
export interface GpuPeak {
  /** NVML product names this row covers. */
  readonly names: readonly string[];
  /** Dense BF16 tensor FLOP/s. */
  readonly bf16: number;
  /** Dense FP8 tensor FLOP/s; absent where the GPU has no FP8 tensor cores. */
  readonly fp8?: number;
  /** The datasheet the figures come from. */
  readonly source: string;
}

const T = 1e12;

export const GPU_PEAKS: readonly GpuPeak[] = [
  { names: ['NVIDIA H100 80GB HBM3'], bf16: 989.4 * T, fp8: 1978.9 * T, source: 'NVIDIA H100 Tensor Core GPU datasheet, H100 SXM: BF16 1,979 / FP8 3,958 TFLOPS with sparsity (https://www.nvidia.com/en-us/data-center/h100/)' },
  { names: ['NVIDIA H100 PCIe'], bf16: 756.5 * T, fp8: 1513 * T, source: 'NVIDIA H100 Tensor Core GPU datasheet (2022), H100 PCIe: BF16 1,513 / FP8 3,026 TFLOPS with sparsity (https://www.nvidia.com/en-us/data-center/h100/)' },
  { names: ['NVIDIA H100 NVL'], bf16: 835.5 * T, fp8: 1670.5 * T, source: 'NVIDIA H100 Tensor Core GPU datasheet, H100 NVL: BF16 1,671 / FP8 3,341 TFLOPS with sparsity (https://www.nvidia.com/en-us/data-center/h100/)' },
  { names: ['NVIDIA H200'], bf16: 989.4 * T, fp8: 1978.9 * T, source: 'NVIDIA H200 Tensor Core GPU datasheet, H200 SXM: BF16 1,979 / FP8 3,958 TFLOPS with sparsity (https://www.nvidia.com/en-us/data-center/h200/)' },
  { names: ['NVIDIA H200 NVL'], bf16: 835.5 * T, fp8: 1670.5 * T, source: 'NVIDIA H200 Tensor Core GPU datasheet, H200 NVL: BF16 1,671 / FP8 3,341 TFLOPS with sparsity (https://www.nvidia.com/en-us/data-center/h200/)' },
  { names: ['NVIDIA A100-SXM4-80GB', 'NVIDIA A100-SXM4-40GB', 'NVIDIA A100 80GB PCIe', 'NVIDIA A100-PCIE-40GB'], bf16: 312 * T, source: 'NVIDIA A100 Tensor Core GPU datasheet: BF16 312 TFLOPS (624 with sparsity); no FP8 (https://www.nvidia.com/en-us/data-center/a100/)' },
  { names: ['NVIDIA L40S'], bf16: 362.05 * T, fp8: 733 * T, source: 'NVIDIA L40S datasheet: BF16 362.05 / FP8 733 TFLOPS dense (733 / 1,466 with sparsity) (https://www.nvidia.com/en-us/data-center/l40s/)' },
];

/** The peak of a GPU by its reported name and precision, or undefined. A simulated GPU's name carries a ` (simulated)` suffix. */
export function peakFlops(name: string, dtype: 'bf16' | 'fp8'): number | undefined {
  const base = name.replace(/ \(simulated\)$/, '');
  const row = GPU_PEAKS.find((p) => p.names.includes(base));
  return row?.[dtype];
}
