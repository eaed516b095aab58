/// The training input pipeline (reference §Training) and its sharded, prefetched batches.
///
/// Per sample (mmseg order, the reference Rein configs):
///   load → Resize(scale) [exact size, mmseg `Resize(scale=…)` without keep_ratio: GTA5
///   1280×720, Cityscapes 1024×512; optional `ratioRange` = mmseg
///   `RandomResize(scale, ratio_range, keep_ratio=True)`, which the reference configs do not
///   use] → RandomCrop(crop, cat_max_ratio 0.75) → RandomFlip(0.5) → PhotoMetricDistortion →
///   Normalize(mean, std, RGB) → pad to the crop size (image 0 after normalisation, label 255).
/// `augment: none`: the same resize, a centre crop, nothing random.
///
/// Sharding: global sample slot `p = step·B + j` (j < B, B = global batch) reads dataset index
/// `perm_e[p mod N]` with `e = ⌊p / N⌋` and `perm_e` a Fisher–Yates shuffle seeded by
/// (seed, e). Rank r of world w takes the contiguous slots `j ∈ [r·B/w, (r+1)·B/w)` (the
/// remainder to the first ranks). Each slot's augmentation generator is seeded by
/// (seed, step, j), so a rank's images are a pure function of (seed, step, rank, world) and
/// the union over ranks is exactly the single-process batch, for any world size.
import Core
import Foundation
import ImageIO
import Numerics

public struct PipelineOptions: Sendable {
    /// Crop (and network input) size.
    public var cropWidth: Int, cropHeight: Int
    /// `false`: `augment: none`.
    public var augment: Bool
    /// Exact training resize (`nil`: keep the decoded size).
    public var scale: (width: Int, height: Int)?
    /// mmseg RandomResize ratio range with keep-ratio (off in the reference configs).
    public var ratioRange: (Float, Float)?
    public var catMaxRatio: Float
    public var flipProbability: Float
    /// `model.backbone.normalize`.
    public var normalization: ImageNormalization = .imagenet

    public init(cropWidth: Int = 512, cropHeight: Int = 512, augment: Bool = true, scale: (width: Int, height: Int)? = nil,
                ratioRange: (Float, Float)? = nil, catMaxRatio: Float = 0.75, flipProbability: Float = 0.5) {
        self.cropWidth = cropWidth; self.cropHeight = cropHeight; self.augment = augment; self.scale = scale
        self.ratioRange = ratioRange; self.catMaxRatio = catMaxRatio; self.flipProbability = flipProbability
    }

    /// The reference options for a dataset: its training scale, crop 512 (or `crop`).
    public static func reference(for dataset: Dataset, crop: Int = 512, augment: Bool = true) -> PipelineOptions {
        PipelineOptions(cropWidth: crop, cropHeight: crop, augment: augment, scale: dataset.trainScale)
    }
}

public enum TrainPipeline {
    /// Applies the pipeline to one decoded sample (8-bit output, before normalisation).
    public static func apply(image: RGBImage, labels: LabelMap, options o: PipelineOptions,
                             rng: inout RandomGenerator) -> (RGBImage, LabelMap) {
        var img = image, lab = labels
        if var target = o.scale.map({ (width: $0.width, height: $0.height) }) {
            if o.augment, let rr = o.ratioRange {
                let r = rng.uniform(rr.0, rr.1)
                let s = (width: Int(Float(target.width) * r), height: Int(Float(target.height) * r))
                target = Transforms.keepRatioSize(width: img.width, height: img.height, scale: s)
            }
            img = Transforms.resize(img, width: target.width, height: target.height)
            lab = Transforms.resize(lab, width: target.width, height: target.height)
        }
        let box = o.augment
            ? Transforms.randomCropBox(lab, cropWidth: o.cropWidth, cropHeight: o.cropHeight, catMaxRatio: o.catMaxRatio, rng: &rng)
            : Transforms.centerBox(width: lab.width, height: lab.height, cropWidth: o.cropWidth, cropHeight: o.cropHeight)
        img = Transforms.crop(img, box)
        lab = Transforms.crop(lab, box)
        if o.augment {
            if rng.uniform() < o.flipProbability { Transforms.flip(&img, &lab) }
            Transforms.photoMetricDistortion(&img, rng: &rng)
        }
        return (img, lab)
    }
}

/// Which dataset indices a rank reads at a step.
public struct ShardedSampler: Sendable {
    public let datasetCount: Int
    public let batchSize: Int
    public let seed: UInt64
    public let rank: Int
    public let worldSize: Int

    public init(datasetCount: Int, batchSize: Int, seed: UInt64, rank: Int = 0, worldSize: Int = 1) {
        precondition(datasetCount > 0 && batchSize > 0 && worldSize > 0 && rank >= 0 && rank < worldSize)
        self.datasetCount = datasetCount; self.batchSize = batchSize; self.seed = seed
        self.rank = rank; self.worldSize = worldSize
    }

    /// This rank's slots `j` within the global batch.
    public var slots: Range<Int> {
        let base = batchSize / worldSize, rem = batchSize % worldSize
        let start = rank * base + min(rank, rem)
        return start..<(start + base + (rank < rem ? 1 : 0))
    }

    /// The permutation of epoch `e` (Fisher–Yates, seeded by seed and e).
    public func permutation(epoch: Int) -> [Int] {
        var rng = RandomGenerator(seed: RandomGenerator.mix(seed ^ 0x5A17_C0DE, UInt64(epoch)))
        var p = Array(0..<datasetCount)
        if datasetCount > 1 {
            for i in stride(from: datasetCount - 1, to: 0, by: -1) { p.swapAt(i, rng.integer(below: i + 1)) }
        }
        return p
    }

    /// (slot j, dataset index, augmentation seed) for this rank at `step`.
    public func assignments(step: Int) -> [(slot: Int, index: Int, seed: UInt64)] {
        var cachedEpoch = -1
        var perm: [Int] = []
        return slots.map { j in
            let p = step * batchSize + j
            let e = p / datasetCount
            if e != cachedEpoch { perm = permutation(epoch: e); cachedEpoch = e }
            let augSeed = RandomGenerator.mix(RandomGenerator.mix(seed, UInt64(step)), UInt64(j) &+ 0x1000)
            return (j, perm[p % datasetCount], augSeed)
        }
    }
}

/// One rank's part of a global batch.
// @unchecked: the loader thread fills a batch, then hands it over; nobody writes it after.
public struct Batch: @unchecked Sendable {
    public let step: Int
    /// [b, 3, H, W] normalised images (b = this rank's slots).
    public let images: Tensor
    /// [b, H, W] train ids (255 ignore).
    public let labels: [UInt8]
    /// Dataset indices of the rows.
    public let indices: [Int]
    /// Slots `j` of the rows within the global batch.
    public let slots: [Int]
}

/// Builds batches (a pure function of step) and prefetches them on a background thread.
///
/// The worker thread holds only the prefetch queue and copies of the dataset, options and
/// sampler — never the loader — so dropping the last reference to a loader stops its
/// thread (`deinit` calls `stop()`); `stop()` may also be called early, and more than once.
// @unchecked: `started` is guarded by `startLock`; batches reach the worker's caller through the locked queue.
public final class BatchLoader: @unchecked Sendable {
    public let dataset: Dataset
    public let options: PipelineOptions
    public let sampler: ShardedSampler

    private let queue: PrefetchQueue
    private var started = false
    private let startLock = NSLock()

    public init(dataset: Dataset, options: PipelineOptions, sampler: ShardedSampler, startStep: Int = 0, prefetch: Int = 2) {
        self.dataset = dataset; self.options = options; self.sampler = sampler
        queue = PrefetchQueue(startStep: startStep, depth: max(1, prefetch))
    }

    deinit { stop() }

    /// Synchronous batch for `step` (no prefetch).
    public func batch(step: Int) throws -> Batch {
        try BatchLoader.batch(step: step, dataset: dataset, options: options, sampler: sampler)
    }

    static func batch(step: Int, dataset: Dataset, options: PipelineOptions, sampler: ShardedSampler) throws -> Batch {
        let asg = sampler.assignments(step: step)
        let H = options.cropHeight, W = options.cropWidth
        let images = Tensor(zeros: [asg.count, 3, H, W])
        var labels = [UInt8](repeating: 255, count: asg.count * H * W)
        for (row, a) in asg.enumerated() {
            let (img0, lab0) = try dataset.load(a.index)
            var rng = RandomGenerator(seed: a.seed)
            let (img, lab) = TrainPipeline.apply(image: img0, labels: lab0, options: options, rng: &rng)
            Transforms.normalize(img, into: images, batch: row, mean: options.normalization.mean, std: options.normalization.std)
            for y in 0..<min(H, lab.height) {
                for x in 0..<min(W, lab.width) { labels[(row * H + y) * W + x] = lab.labels[y * lab.width + x] }
            }
        }
        return Batch(step: step, images: images, labels: labels, indices: asg.map(\.index), slots: asg.map(\.slot))
    }

    /// The next batch in step order, prepared in the background (a bounded queue of
    /// `prefetch` batches). The first call starts the worker thread.
    public func next() throws -> Batch {
        startLock.lock()
        if !started {
            started = true
            let (q, d, o, s) = (queue, dataset, options, sampler)
            let t = Thread { q.work { step in Result { try BatchLoader.batch(step: step, dataset: d, options: o, sampler: s) } } }
            t.name = "causal-tune batch loader"
            t.start()
        }
        startLock.unlock()
        return try queue.take().get()
    }

    /// Stops the background thread (the batch it is preparing is dropped); a later
    /// `next()` throws instead of waiting.
    public func stop() { queue.stop() }
}

/// The bounded step-ordered queue between `BatchLoader.next()` and its worker thread.
// @unchecked: every member is read and written under its condition lock.
final class PrefetchQueue: @unchecked Sendable {
    private let lock = NSCondition()
    private var ready: [Int: Result<Batch, Error>] = [:]
    private var nextToPrepare: Int
    private var nextToTake: Int
    private let depth: Int
    private var stopped = false

    init(startStep: Int, depth: Int) {
        nextToPrepare = startStep; nextToTake = startStep; self.depth = depth
    }

    /// The worker: prepares steps in order, at most `depth` ahead of the consumer, until stopped.
    func work(_ produce: (Int) -> Result<Batch, Error>) {
        while true {
            lock.lock()
            while !stopped && nextToPrepare - nextToTake >= depth { lock.wait() }
            if stopped { lock.unlock(); return }
            let step = nextToPrepare
            nextToPrepare += 1
            lock.unlock()
            let r = produce(step)
            lock.lock()
            if !stopped { ready[step] = r }
            lock.broadcast()
            lock.unlock()
        }
    }

    /// The next step's result (waits for the worker; a failure once stopped).
    func take() -> Result<Batch, Error> {
        lock.lock()
        let want = nextToTake
        while ready[want] == nil && !stopped { lock.wait() }
        guard let r = ready.removeValue(forKey: want) else {
            lock.unlock()
            return .failure(CausalTuneError("batch loader: next() after stop()"))
        }
        nextToTake += 1
        lock.broadcast()
        lock.unlock()
        return r
    }

    func stop() {
        lock.lock(); stopped = true; ready = [:]; lock.broadcast(); lock.unlock()
    }
}
