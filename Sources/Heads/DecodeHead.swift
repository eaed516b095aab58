import Numerics
import Layers

/// A decode head: turns the post-PEFT patch tokens of some backbone blocks into per-pixel
/// class scores and owns its training loss — the trainer drives any head through this
/// protocol (`linear`, `mask2former`) without knowing which it is.
///
/// Features are the patch tokens of the blocks in `outIndices` (in that order), each
/// `[B, h·w, C]` row-major on the patch grid. Training is a pair of calls:
///
///     terms = head.forwardLoss(features, grid, labels, normalizer)   caches what backward needs
///     head.backwardLoss(dFeatures)                                    dFeatures[j] += ∂L/∂features[j]
///
/// where `L = terms.sum / normalizer` and the head accumulates its own parameter
/// gradients. The data-parallel trainer first all-reduces `lossNormalizer(labels)` over
/// the ranks and passes the global value, so that the summed gradients of all ranks equal
/// the gradient of the single-process loss over the whole global batch.
public protocol DecodeHead: AnyObject {
    /// The `model.head.type` value (`linear`).
    var type: String { get }
    /// The backbone blocks whose outputs the head reads.
    var outIndices: [Int] { get }
    var numClasses: Int { get }
    /// The trainable parameters with their reference §Files names (`head/...`).
    var parameters: [NamedParameter] { get }

    /// This rank's share of the loss normaliser for `labels` (for `linear`: the valid
    /// pixels, label < K and ≠ 255).
    func lossNormalizer(labels: LabelBatch) -> Int

    /// Forward pass and loss on a batch; `normalizer` is the global normaliser.
    func forwardLoss(features: [Tensor], grid: (h: Int, w: Int), labels: LabelBatch, normalizer: Int) -> LossTerms

    /// Backward of the last `forwardLoss`: accumulates parameter gradients and
    /// `dFeatures[j]` (`[B, h·w, C]`, same order as `features`).
    func backwardLoss(dFeatures: [Tensor])

    /// Inference: class scores `[B, K, H, W]` at `size` (the network input size).
    func predict(features: [Tensor], grid: (h: Int, w: Int), size: (h: Int, w: Int)) -> Tensor

    /// Zeroes every parameter gradient.
    func zeroGradients()
}

/// Train-id labels of a batch, `[B, H, W]` row-major, 255 = ignore.
public struct LabelBatch {
    public let batch: Int
    public let height: Int
    public let width: Int
    public var values: [UInt8]

    public init(batch: Int, height: Int, width: Int, values: [UInt8]) {
        precondition(values.count == batch * height * width, "LabelBatch: \(values.count) labels for [\(batch), \(height), \(width)]")
        self.batch = batch; self.height = height; self.width = width; self.values = values
    }
}

/// A loss before normalisation: `sum` of per-pixel (or per-item) losses on this rank and
/// the global `normalizer` it is divided by; `loss = sum / normalizer`.
public struct LossTerms {
    public var sum: Double
    public var normalizer: Int
    public init(sum: Double, normalizer: Int) { self.sum = sum; self.normalizer = normalizer }
    public var loss: Double { normalizer > 0 ? sum / Double(normalizer) : 0 }
}

/// The quarter-point blocks reference §Heads uses by default: Rein's `[7, 11, 15, 23]` for 24
/// blocks, `[9, 19, 29, 39]` for 40, otherwise `[L/4−1, L/2−1, 3L/4−1, L−1]`.
public func defaultOutIndices(depth: Int) -> [Int] {
    switch depth {
    case 24: return [7, 11, 15, 23]
    case 40: return [9, 19, 29, 39]
    default:
        let l = depth
        return Array(Set([l / 4 - 1, l / 2 - 1, 3 * l / 4 - 1, l - 1].map { Swift.max(0, $0) })).sorted()
    }
}
