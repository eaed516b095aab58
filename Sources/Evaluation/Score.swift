/// `causal-tune score`: mIoU of prediction PNGs against ground-truth PNGs, matched by stem.
///
/// Files are found recursively under both folders (`.png` only). A file's *stem* is its
/// name without the extension and without the first matching Cityscapes-family suffix in
/// `FileStem.suffixes` (`_gtFine_labelIds`, `_gtFine_labelTrainIds`, `_gt_labelIds`,
/// `_leftImg8bit`, `_rgb_anon`, `_pred`, …), so `aachen_000000_000019_leftImg8bit.png`
/// matches `aachen_000000_000019_gtFine_labelIds.png`. Ground truth folders that hold the
/// whole Cityscapes `gtFine` set are filtered first: with `labelid` only `*labelIds.png`
/// are used, with `trainid` only `*labelTrainIds.png` when there are any (and never
/// `*_color.png` / `*_instanceIds.png`). Without `--gt-format` the encoding is inferred:
/// `trainid` if any gt name ends in `labelTrainIds.png`, else `labelid` if any ends in
/// `labelIds.png`, else `trainid`.
///
/// Every ground-truth file needs exactly one prediction of the same size; predictions
/// without ground truth are ignored (as cityscapesScripts does). Prediction values
/// outside 0…18 (255 included) are wrong predictions (see `ConfusionMatrix`).
import Core
import Data
import Foundation
import ImageIO
import Numerics

public enum Score {
    /// The `.png` files below `dir`, sorted.
    static func pngFiles(under dir: String, role: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw CausalTuneError("\(dir): \(role) folder not found")
        }
        guard let e = FileManager.default.enumerator(atPath: dir) else { throw CausalTuneError("\(dir): cannot list \(role) folder") }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            if rel.lowercased().hasSuffix(".png") { out.append((dir as NSString).appendingPathComponent(rel)) }
        }
        return out.sorted()
    }

    /// The ground-truth encoding inferred from file names (see the file comment).
    public static func inferEncoding(gtFiles: [String]) -> LabelEncoding {
        if gtFiles.contains(where: { $0.hasSuffix("labelTrainIds.png") }) { return .trainId }
        if gtFiles.contains(where: { $0.hasSuffix("labelIds.png") }) { return .labelId }
        return .trainId
    }

    /// Matches predictions to ground truth. Returns (prediction, ground truth) pairs in gt order.
    public static func match(predDir: String, gtDir: String, encoding: LabelEncoding?) throws
        -> (pairs: [(pred: String, gt: String)], encoding: LabelEncoding)
    {
        var gts = try pngFiles(under: gtDir, role: "ground-truth")
        gts.removeAll { $0.hasSuffix("_color.png") || $0.hasSuffix("_instanceIds.png") }
        let enc = encoding ?? inferEncoding(gtFiles: gts)
        switch enc {
        case .labelId:
            if gts.contains(where: { $0.hasSuffix("labelIds.png") && !$0.hasSuffix("labelTrainIds.png") }) {
                gts.removeAll { !($0.hasSuffix("labelIds.png") && !$0.hasSuffix("labelTrainIds.png")) }
            }
        case .trainId:
            if gts.contains(where: { $0.hasSuffix("labelTrainIds.png") }) {
                gts.removeAll { !$0.hasSuffix("labelTrainIds.png") }
            }
        }
        guard !gts.isEmpty else { throw CausalTuneError("\(gtDir): no ground-truth PNG files found") }
        let preds = try pngFiles(under: predDir, role: "prediction")
        var byStem: [String: String] = [:]
        for p in preds {
            let s = FileStem.of(p)
            if let other = byStem[s] {
                throw CausalTuneError("\(p): two predictions share the stem '\(s)' (also \(other))")
            }
            byStem[s] = p
        }
        var seen: [String: String] = [:]
        var pairs: [(pred: String, gt: String)] = []
        for g in gts {
            let s = FileStem.of(g)
            if let other = seen[s] { throw CausalTuneError("\(g): two ground-truth files share the stem '\(s)' (also \(other))") }
            seen[s] = g
            guard let p = byStem[s] else {
                throw CausalTuneError("\(g): no prediction with stem '\(s)' in \(predDir)")
            }
            pairs.append((p, g))
        }
        return (pairs, enc)
    }

    /// Scores the matched pairs: reads every file (in parallel) and accumulates the
    /// confusion matrix over the whole set.
    public static func confusion(pairs: [(pred: String, gt: String)], encoding: LabelEncoding) throws -> ConfusionMatrix {
        let lock = NSLock()
        var total = ConfusionMatrix()
        var firstError: Error? = nil
        Parallel.forEach(pairs.count) { range in
            var local = ConfusionMatrix()
            for i in range {
                do {
                    let pred = try ImageIO.readLabels(pairs[i].pred)
                    var gt = try ImageIO.readLabels(pairs[i].gt)
                    guard pred.width == gt.width, pred.height == gt.height else {
                        throw CausalTuneError("\(pairs[i].pred): size \(pred.width)x\(pred.height) differs from ground truth \(pairs[i].gt) (\(gt.width)x\(gt.height))")
                    }
                    encoding.toTrainIds(&gt)
                    local.add(prediction: pred, groundTruth: gt)
                } catch {
                    lock.lock(); if firstError == nil { firstError = error }; lock.unlock()
                    return
                }
            }
            lock.lock(); total.add(local); lock.unlock()
        }
        if let firstError { throw firstError }
        return total
    }

    /// `score`: matches, reads and scores; returns the metrics, the number of pairs and
    /// the encoding used.
    public static func run(predDir: String, gtDir: String, encoding: LabelEncoding? = nil) throws
        -> (metrics: SegmentationMetrics, images: Int, encoding: LabelEncoding)
    {
        let (pairs, enc) = try match(predDir: predDir, gtDir: gtDir, encoding: encoding)
        let cm = try confusion(pairs: pairs, encoding: enc)
        return (cm.metrics(), pairs.count, enc)
    }
}
