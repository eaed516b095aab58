/// Evaluation (reference §Training): keep-ratio resize, sliding-window inference, mIoU over whole splits.
///
/// Per image (mmseg's test pipeline of the reference configs):
///   x = Normalize(Resize(image, scale, keep_ratio=True))            [1, 3, h, w]
///   windows: h_grids = ⌊max(h − c_h + s_h − 1, 0) / s_h⌋ + 1 (same for w); window (i, j)
///            spans y₁ = i·s_h, y₂ = min(y₁ + c_h, h), then y₁ = max(y₂ − c_h, 0) (border
///            windows shifted back inside, mmseg `slide_inference`), likewise in x
///   logits = Σ_windows pad(model(x[window])) / count                  [1, K, h, w]
///   logits → bilinear (align_corners=False) to the original H × W, argmax → prediction
///   (the ground truth is never resized: mmseg loads annotations after `Resize`)
/// The confusion matrix (`ConfusionMatrix`) is accumulated over the split, then IoU per
/// class, classes absent from both prediction and ground truth excluded from the mean.
/// Distributed: rank r evaluates the images i with i mod world = r; the confusion counts
/// are summed with the communicator's all-reduce, so every rank returns the same metrics.
/// Saved predictions (`PredictionSink`, `evaluate --save-pred`): rank 0 alone receives every
/// image's prediction. The images go in rounds of `world` (image round·world + r on rank r);
/// after each round every rank broadcasts its prediction bytes and rank 0 reloads the image
/// and ground truth of the others' images and hands all of them, in index order, to the sink.
/// A failure anywhere (prediction on any rank, writing on rank 0) ends the round loop on
/// every rank together and is raised on every rank.
import Core
import Data
import Distributed
import Foundation
import ImageIO
import Numerics

/// A segmentation network for evaluation: normalised windows [n, 3, h, w] → logits [n, K, h, w]
/// (n = 1 unless the `SlidingWindow`'s `batch` allows more).
public typealias SegmentationModel = (Tensor) throws -> Tensor

/// Receives an evaluated image (on rank 0 only, every image of the split once, in index
/// order): its dataset, sample index, decoded image, ground truth as train ids and the
/// prediction (train ids) — all at the image's original size, the size the metrics use.
public typealias PredictionSink = (_ dataset: Dataset, _ index: Int, _ image: RGBImage, _ groundTruth: LabelMap,
                                   _ prediction: LabelMap) throws -> Void

/// How an evaluation image becomes network inputs: windows of the network's input size
/// (mmseg's `slide` mode) over the image normalised with the backbone's statistics.
public struct SlidingWindow: Sendable {
    public var cropWidth: Int, cropHeight: Int, strideWidth: Int, strideHeight: Int
    /// `model.backbone.normalize`.
    public var normalization: ImageNormalization = .imagenet
    /// How many windows of one image go to the model in one call (`[n, 3, h, w]`, n ≤ batch;
    /// 1: one window per call). The sum over windows runs in window order either way.
    public var batch: Int = 1
    /// The reference: 512×512 windows, stride 341.
    public init(crop: Int = 512, stride: Int = 341) {
        cropWidth = crop; cropHeight = crop; strideWidth = stride; strideHeight = stride
    }
    public init(cropWidth: Int, cropHeight: Int, strideWidth: Int, strideHeight: Int) {
        self.cropWidth = cropWidth; self.cropHeight = cropHeight; self.strideWidth = strideWidth; self.strideHeight = strideHeight
    }

    /// The windows (x₁, y₁, x₂, y₂) for an h × w input, in mmseg order.
    public func windows(height h: Int, width w: Int) -> [(x1: Int, y1: Int, x2: Int, y2: Int)] {
        let hg = max(h - cropHeight + strideHeight - 1, 0) / strideHeight + 1
        let wg = max(w - cropWidth + strideWidth - 1, 0) / strideWidth + 1
        var out: [(x1: Int, y1: Int, x2: Int, y2: Int)] = []
        for i in 0..<hg {
            for j in 0..<wg {
                var y1 = i * strideHeight, x1 = j * strideWidth
                let y2 = min(y1 + cropHeight, h), x2 = min(x1 + cropWidth, w)
                y1 = max(y2 - cropHeight, 0); x1 = max(x2 - cropWidth, 0)
                out.append((x1, y1, x2, y2))
            }
        }
        return out
    }
}

/// Metrics of several domains and their mean.
public struct EvaluationReport: Sendable {
    public var domains: [(name: String, metrics: SegmentationMetrics)]
    public init(domains: [(name: String, metrics: SegmentationMetrics)]) { self.domains = domains }

    /// Mean of the per-domain mIoUs (domains without a defined mIoU left out).
    public var meanMIoU: Double? {
        let v = domains.compactMap { $0.metrics.miou }
        return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
    }

    /// `{"<domain>": {"miou": …, "iou": {…}, "pixels": n}, …, "mean_miou": m}`.
    public var json: String {
        JSONValue.object(domains.map { ($0.name, $0.metrics.json) } + [("mean_miou", .number(meanMIoU))]).text
    }

    /// Per-class IoU (%) with one column per domain, then the per-domain mIoU and the mean.
    public var table: String {
        guard let first = domains.first else { return "(no domains)" }
        let names = first.metrics.classNames
        let cw = max(8, (domains.map(\.name.count).max() ?? 0) + 1)
        func cell(_ s: String) -> String { String(repeating: " ", count: max(0, cw - s.count)) + s }
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f", $0 * 100) } ?? "n/a" }
        var lines = [pad("class", 14) + domains.map { cell($0.name) }.joined()]
        let rule = String(repeating: "-", count: 14 + cw * domains.count)
        lines.append(rule)
        for (c, n) in names.enumerated() {
            lines.append(pad(n, 14) + domains.map { cell(pct(c < $0.metrics.iou.count ? $0.metrics.iou[c] : nil)) }.joined())
        }
        lines.append(rule)
        lines.append(pad("mIoU", 14) + domains.map { cell(pct($0.metrics.miou)) }.joined())
        lines.append("mean mIoU over \(domains.count) domain(s): \(pct(meanMIoU))")
        return lines.joined(separator: "\n")
    }
}

public enum Evaluator {
    /// Sliding-window logits for one normalised image `x` [1, 3, h, w] → [1, K, h, w]. Runs of
    /// consecutive windows of the same size (in mmseg every window of an image has the same
    /// size) go to the model `window.batch` at a time; the logits are summed in window order.
    public static func slideInference(_ x: Tensor, numClasses K: Int, window: SlidingWindow,
                                      model: SegmentationModel) throws -> Tensor {
        precondition(x.shape.count == 4 && x.shape[0] == 1 && x.shape[1] == 3)
        let h = x.shape[2], w = x.shape[3]
        let sum = Tensor(zeros: [1, K, h, w])
        var count = [Float](repeating: 0, count: h * w)
        let wins = window.windows(height: h, width: w)
        var first = 0
        while first < wins.count {
            let ch = wins[first].y2 - wins[first].y1, cw = wins[first].x2 - wins[first].x1
            var end = first + 1
            while end < wins.count && end - first < max(1, window.batch)
                    && wins[end].y2 - wins[end].y1 == ch && wins[end].x2 - wins[end].x1 == cw { end += 1 }
            let n = end - first
            let crop = Tensor(zeros: [n, 3, ch, cw])
            for (b, win) in wins[first..<end].enumerated() {
                for c in 0..<3 { for y in 0..<ch {
                    (crop.data + ((b * 3 + c) * ch + y) * cw).update(from: x.data + (c * h + win.y1 + y) * w + win.x1, count: cw)
                } }
            }
            let out = try model(crop)
            guard out.shape == [n, K, ch, cw] else {
                throw CausalTuneError("model returned logits of shape \(out.shape) for \(n) window(s) of \(ch)x\(cw) (expected [\(n), \(K), \(ch), \(cw)])")
            }
            for (b, win) in wins[first..<end].enumerated() {
                for k in 0..<K { for y in 0..<ch {
                    let d = sum.data + (k * h + win.y1 + y) * w + win.x1, s = out.data + ((b * K + k) * ch + y) * cw
                    for i in 0..<cw { d[i] += s[i] }
                } }
                for y in win.y1..<win.y2 { for x0 in win.x1..<win.x2 { count[y * w + x0] += 1 } }
            }
            first = end
        }
        for k in 0..<K { for i in 0..<(h * w) { sum.data[k * h * w + i] /= count[i] } }
        return sum
    }

    /// Per-pixel argmax over K of [1, K, h, w] → train ids (first maximum wins, as torch).
    public static func argmax(_ logits: Tensor) -> LabelMap {
        let K = logits.shape[1], h = logits.shape[2], w = logits.shape[3], n = h * w
        var out = [UInt8](repeating: 0, count: n)
        let p = logits.data
        out.withUnsafeMutableBufferPointer { o in
            let ob = o.baseAddress!
            Parallel.forEach(n, grain: 4096) { r in
                for i in r {
                    var best = p[i], arg = 0
                    for k in 1..<K where p[k * n + i] > best { best = p[k * n + i]; arg = k }
                    ob[i] = UInt8(arg)
                }
            }
        }
        return LabelMap(width: w, height: h, labels: out)
    }

    /// Prediction (train ids at the image's original size) for one image.
    public static func predict(_ image: RGBImage, scale: (width: Int, height: Int)?, numClasses K: Int,
                               window: SlidingWindow, model: SegmentationModel) throws -> LabelMap {
        var x = image
        if let s = scale {
            let t = Transforms.keepRatioSize(width: image.width, height: image.height, scale: s)
            x = Transforms.resize(image, width: t.width, height: t.height)
        }
        let input = Tensor(zeros: [1, 3, x.height, x.width])
        Transforms.normalize(x, into: input, batch: 0, mean: window.normalization.mean, std: window.normalization.std)
        var logits = try slideInference(input, numClasses: K, window: window, model: model)
        if x.width != image.width || x.height != image.height {
            let full = Tensor(zeros: [1, K, image.height, image.width])
            Resample.bilinear(logits, into: full)
            logits = full
        }
        return argmax(logits)
    }

    /// A sink writing each prediction as a train-id PNG `dir/<stem>.png` (what `score` reads).
    public static func trainIdWriter(directory dir: String) -> PredictionSink {
        { dataset, i, _, _, prediction in try ImageIO.writePNG(prediction, to: "\(dir)/\(dataset.samples[i].stem).png") }
    }

    /// The confusion matrix of the images i ≡ rank (mod world) of a dataset (this rank's
    /// share); every prediction also goes to `predictions` when given (single process: use
    /// `evaluate(dataset:…)` to gather them across ranks), and as a train-id PNG to
    /// `savePredictions/<stem>.png` when that is given.
    public static func confusion(dataset: Dataset, model: SegmentationModel, numClasses K: Int = Cityscapes.numClasses,
                                 window: SlidingWindow = SlidingWindow(), scale: (width: Int, height: Int)?,
                                 rank: Int = 0, world: Int = 1, savePredictions: String? = nil,
                                 predictions: PredictionSink? = nil,
                                 progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> ConfusionMatrix {
        var cm = ConfusionMatrix(numClasses: K)
        var done = 0
        let total = (dataset.count - rank + world - 1) / world
        let writeTrainIds = savePredictions.map { trainIdWriter(directory: $0) }
        for i in stride(from: rank, to: dataset.count, by: world) {
            let (img, gt) = try dataset.load(i)
            let pred = try predict(img, scale: scale, numClasses: K, window: window, model: model)
            cm.add(prediction: pred, groundTruth: gt)
            try writeTrainIds?(dataset, i, img, gt, pred)
            try predictions?(dataset, i, img, gt, pred)
            done += 1
            progress?(done, total)
        }
        return cm
    }

    /// The confusion matrix of this rank's share (images i ≡ rank mod world), with every
    /// prediction of the split gathered to rank 0's `sink` round by round (see the file
    /// comment; other ranks' sinks are not called). Collective: every rank calls it with
    /// the same dataset. Failures are synchronised: every rank throws (the failing rank its
    /// own error).
    static func confusionGathered(dataset: Dataset, model: SegmentationModel, numClasses K: Int, window: SlidingWindow,
                                  scale: (width: Int, height: Int)?, communicator comm: Communicator,
                                  sink: PredictionSink?,
                                  progress: ((_ done: Int, _ total: Int) -> Void)?) throws -> ConfusionMatrix {
        let rank = comm.rank, world = comm.size
        var cm = ConfusionMatrix(numClasses: K)
        var failure: Error? = nil
        var done = 0
        let total = (dataset.count - rank + world - 1) / world
        let rounds = (dataset.count + world - 1) / world
        for round in 0..<rounds {
            let mine = round * world + rank
            var own: (image: RGBImage, gt: LabelMap, pred: LabelMap)? = nil
            if mine < dataset.count {
                do {
                    let (img, gt) = try dataset.load(mine)
                    let pred = try predict(img, scale: scale, numClasses: K, window: window, model: model)
                    cm.add(prediction: pred, groundTruth: gt)
                    own = (img, gt, pred)
                } catch { failure = error }
            }
            // A failed prediction (any rank) or a failed write (rank 0, last round) stops all.
            if comm.any(failure != nil) { break }
            for r in 0..<world {
                let i = round * world + r
                guard i < dataset.count else { break }
                let bytes = comm.broadcast(r == rank ? (own?.pred.labels ?? []) : [], root: r)
                guard rank == 0, failure == nil, let sink else { continue }
                do {
                    if r == 0, let o = own {
                        try sink(dataset, i, o.image, o.gt, o.pred)
                    } else {
                        let (img, gt) = try dataset.load(i)
                        guard bytes.count == img.width * img.height else {
                            throw CausalTuneError("\(dataset.samples[i].image): rank \(r) sent a prediction of \(bytes.count) pixels for a \(img.width)x\(img.height) image")
                        }
                        try sink(dataset, i, img, gt, LabelMap(width: img.width, height: img.height, labels: bytes))
                    }
                } catch { failure = error }
            }
            if own != nil { done += 1; progress?(done, total) }
        }
        if comm.any(failure != nil) {
            throw failure ?? CausalTuneError("evaluation of \(dataset.name) failed on another rank")
        }
        return cm
    }

    /// Evaluates a dataset split at its evaluation scale (`scale` overrides it; `.some(nil)`
    /// keeps the decoded size). With a communicator of size > 1, rank r takes the images
    /// i ≡ r (mod world) and the confusion matrices are summed across ranks, so every rank
    /// returns the same metrics; a failure on any rank is raised on every rank. Every
    /// prediction goes to rank 0's `predictions` (gathered from the other ranks when any
    /// rank passes a sink or a folder; the other ranks' sinks are not called), and as a
    /// train-id PNG to `savePredictions/<stem>.png` (written by rank 0) when given.
    public static func evaluate(dataset: Dataset, model: SegmentationModel, numClasses K: Int = Cityscapes.numClasses,
                                classNames: [String] = Cityscapes.classNames, window: SlidingWindow = SlidingWindow(),
                                scale: (width: Int, height: Int)?? = nil, communicator: Communicator? = nil,
                                savePredictions: String? = nil, predictions: PredictionSink? = nil,
                                progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> SegmentationMetrics {
        let rank = communicator?.rank ?? 0, world = communicator?.size ?? 1
        let s = scale ?? dataset.evalScale
        var sink = predictions
        if let dir = savePredictions {
            let writeTrainIds = trainIdWriter(directory: dir)
            sink = { d, i, img, gt, pred in
                try writeTrainIds(d, i, img, gt, pred)
                try predictions?(d, i, img, gt, pred)
            }
        }
        var cm = ConfusionMatrix(numClasses: K)
        // Gathering is collective: decided together (ranks other than 0 may pass no sink).
        if let comm = communicator, comm.size > 1, comm.any(sink != nil) {
            cm = try confusionGathered(dataset: dataset, model: model, numClasses: K, window: window, scale: s,
                                       communicator: comm, sink: sink, progress: progress)
            comm.allReduceSum(&cm.counts)
            return cm.metrics(classNames: classNames)
        }
        var failure: Error? = nil
        do {
            cm = try confusion(dataset: dataset, model: model, numClasses: K, window: window, scale: s, rank: rank, world: world,
                               predictions: sink, progress: progress)
        } catch { failure = error }
        if let comm = communicator, comm.size > 1 {
            if comm.any(failure != nil) {
                throw failure ?? CausalTuneError("evaluation of \(dataset.name) failed on another rank")
            }
            comm.allReduceSum(&cm.counts)
        } else if let failure { throw failure }
        return cm.metrics(classNames: classNames)
    }

    /// Evaluates several datasets (domains) and reports each and the mean over domains.
    public static func evaluate(datasets: [Dataset], model: SegmentationModel, numClasses K: Int = Cityscapes.numClasses,
                                window: SlidingWindow = SlidingWindow(), communicator: Communicator? = nil,
                                savePredictions: String? = nil, predictions: PredictionSink? = nil) throws -> EvaluationReport {
        var out: [(name: String, metrics: SegmentationMetrics)] = []
        for d in datasets {
            let m = try evaluate(dataset: d, model: model, numClasses: K, window: window, communicator: communicator,
                                 savePredictions: savePredictions.map { "\($0)/\(d.name)" }, predictions: predictions)
            out.append((d.name, m))
        }
        return EvaluationReport(domains: out)
    }
}
