import Foundation
import Numerics
import Heads

/// Seconds spent in one rank's share of a step, summed over its images.
public struct StepTimings {
    /// Forward passes (backbone, PEFT, head with its loss).
    public var forward = 0.0
    /// Backward passes.
    public var backward = 0.0
    /// The head's share: its forward with the loss, and its backward.
    public var headForward = 0.0
    public var headBackward = 0.0
}

extension SegmentationNetwork {
    /// This rank's gradients of one update, image by image: every image of `images`
    /// `[b, 3, S, S]` (global slots `sum`'s next b slots, `labels` `[b, S, S]`) runs forward,
    /// loss and backward on its own, with the *global* `normalizer`, and its gradient (the
    /// flat buffer of `parameters`) and loss sum go to `sum`. One image at a time makes an
    /// image's gradient independent of which images share its rank, which is what lets
    /// `SlotGradientSum` give every world size the same bits. `pointSeeds` are the
    /// images' point-sampling seeds (mask2former). `beforeImage` runs before each image
    /// (the benchmark's timers).
    public func accumulateImageGradients(images: Tensor, labels: LabelBatch, normalizer: Int, pointSeeds: [UInt64]?,
                                         parameters: ParameterSet, into sum: SlotGradientSum,
                                         beforeImage: () -> Void = {}) -> StepTimings {
        let b = images.shape[0]
        precondition(labels.batch == b && (pointSeeds == nil || pointSeeds!.count == b),
                     "accumulateImageGradients: \(b) images, \(labels.batch) label maps, \(pointSeeds?.count ?? 0) seeds")
        let pixels = labels.height * labels.width
        var timings = StepTimings()
        for i in 0..<b {
            beforeImage()
            let t0 = Date()
            let label = LabelBatch(batch: 1, height: labels.height, width: labels.width,
                                   values: Array(labels.values[(i * pixels)..<((i + 1) * pixels)]))
            parameters.zeroGradients()
            let terms = forwardBackward(images: images.rows(i..<(i + 1)), labels: label, normalizer: normalizer,
                                        pointSeeds: pointSeeds.map { [$0[i]] })
            parameters.gatherGradients()
            sum.add(gradient: parameters.grads, lossSum: terms.sum)
            timings.forward += forwardSeconds
            timings.backward += Date().timeIntervalSince(t0) - forwardSeconds
            timings.headForward += headForwardSeconds
            timings.headBackward += headBackwardSeconds
        }
        return timings
    }
}
