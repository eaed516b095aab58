import Foundation
import Numerics

/// Pixel-wise softmax cross-entropy for segmentation (mmseg `CrossEntropyLoss` with
/// `ignore_index=255`, `avg_non_ignore=True`):
///
///     p[b, :, y, x] = softmax_k(logits[b, :, y, x])           logits [B, K, H, W]
///     L = (1/n) Σ_{valid (b, y, x)} −log p[b, label, y, x]     labels [B, H, W]
///     dlogits[b, k, y, x] += (p[b, k, y, x] − [k = label]) / n
///
/// `n` is the number of valid pixels (label ≠ ignore and < K), or `normalizer` when given —
/// the data-parallel trainer passes the valid-pixel count of the whole global batch so that
/// the averaged gradient equals the single-process one. Labels ≥ K other than the ignore
/// index are treated as ignored and counted in `outOfRangePixels` so the caller can report
/// them. With no valid pixel the loss is 0 and no gradient is added. (mmseg's default
/// `avg_non_ignore=False` divides by all B·H·W pixels instead: pass that as `normalizer`.)
public enum PixelCrossEntropy {
    public struct Result {
        /// The mean loss over the `n` pixels (Double accumulation).
        public let loss: Double
        /// Σ −log p over valid pixels (not divided by anything).
        public let lossSum: Double
        /// The number of valid pixels.
        public let validPixels: Int
        /// Pixels whose label is neither a class (< K) nor the ignore index.
        public let outOfRangePixels: Int
    }

    /// Computes the loss and, when `dLogits` is given ([B, K, H, W]), accumulates its gradient.
    /// `labels` holds B·H·W train ids, row-major.
    public static func forwardBackward(logits: Tensor, labels: UnsafeBufferPointer<UInt8>, dLogits: Tensor?,
                                       ignoreIndex: UInt8 = 255, normalizer: Int? = nil) -> Result {
        precondition(logits.rank == 4, "PixelCrossEntropy: logits \(logits.shape) are not [B, K, H, W]")
        let (B, K, H, W) = (logits.shape[0], logits.shape[1], logits.shape[2], logits.shape[3])
        let HW = H * W
        precondition(labels.count == B * HW, "PixelCrossEntropy: \(labels.count) labels for logits \(logits.shape)")
        if let d = dLogits { precondition(d.shape == logits.shape, "PixelCrossEntropy: dLogits \(d.shape)") }
        let lp = logits.data, lab = labels.baseAddress!
        let ignore = Int(ignoreIndex)

        // Pass 1: count valid pixels (needed for the gradient scale before pass 2).
        var valid = 0, outOfRange = 0
        for i in 0..<(B * HW) {
            let l = Int(lab[i])
            if l == ignore { continue }
            if l < K { valid += 1 } else { outOfRange += 1 }
        }
        let n = normalizer ?? valid
        let invN: Float = n > 0 ? 1 / Float(n) : 0
        let dp = dLogits?.data

        // Pass 2: blocks of pixels; inner loops run over contiguous pixels of one class plane.
        let block = 256
        let blocksPerImage = (HW + block - 1) / block
        let total = B * blocksPerImage
        // One partial loss sum per block, added in block order: the same bits for any
        // thread count.
        var partial = [Double](repeating: 0, count: total)
        partial.withUnsafeMutableBufferPointer { part in
            Parallel.forEach(total, grain: 8) { br in
                let mx = UnsafeMutablePointer<Float>.allocate(capacity: block)
                let sum = UnsafeMutablePointer<Float>.allocate(capacity: block)
                let cls = UnsafeMutablePointer<Int>.allocate(capacity: block)
                let ex = UnsafeMutablePointer<Float>.allocate(capacity: block * Swift.max(K, 1))  // exp(logit − max)
                defer { mx.deallocate(); sum.deallocate(); cls.deallocate(); ex.deallocate() }
                for blk in br {
                    var acc = 0.0
                    let b = blk / blocksPerImage, p0 = (blk % blocksPerImage) * block
                    let np = Swift.min(block, HW - p0)
                    let base = lp + b * K * HW + p0
                    let lb = lab + b * HW + p0
                    for j in 0..<np {
                        let l = Int(lb[j])
                        cls[j] = (l < K && l != ignore) ? l : -1
                        mx[j] = base[j]
                    }
                    for k in 1..<Swift.max(K, 1) {
                        let plane = base + k * HW
                        for j in 0..<np { mx[j] = Swift.max(mx[j], plane[j]) }
                    }
                    for j in 0..<np { sum[j] = 0 }
                    for k in 0..<K {
                        let plane = base + k * HW, e = ex + k * block
                        for j in 0..<np {
                            e[j] = expf(plane[j] - mx[j])
                            sum[j] += e[j]
                        }
                    }
                    for j in 0..<np where cls[j] >= 0 {
                        acc += Double(logf(sum[j]) + mx[j] - base[cls[j] * HW + j])
                    }
                    if let d = dp, invN != 0 {
                        // dlogit = p / n for every class, then −1/n at the label.
                        for j in 0..<np { sum[j] = cls[j] >= 0 ? invN / sum[j] : 0 }
                        let dbase = d + b * K * HW + p0
                        for k in 0..<K {
                            let e = ex + k * block, dplane = dbase + k * HW
                            for j in 0..<np { dplane[j] += e[j] * sum[j] }
                        }
                        for j in 0..<np where cls[j] >= 0 { dbase[cls[j] * HW + j] -= invN }
                    }
                    part[blk] = acc
                }
            }
        }
        let lossSum = partial.reduce(0, +)
        return Result(loss: n > 0 ? lossSum / Double(n) : 0, lossSum: lossSum, validPixels: valid,
                      outOfRangePixels: outOfRange)
    }

    /// Array form of `forwardBackward`.
    public static func forwardBackward(logits: Tensor, labels: [UInt8], dLogits: Tensor?,
                                       ignoreIndex: UInt8 = 255, normalizer: Int? = nil) -> Result {
        labels.withUnsafeBufferPointer {
            forwardBackward(logits: logits, labels: $0, dLogits: dLogits, ignoreIndex: ignoreIndex, normalizer: normalizer)
        }
    }
}
