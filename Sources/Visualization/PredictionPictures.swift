import Core
import Data
import Evaluation
import Foundation
import ImageIO

/// `causal-tune evaluate --save-pred DIR`: the files of every evaluated image
/// (prediction, overlay, error map), written by rank 0 (the evaluator gathers the other ranks' predictions):
///
///     DIR/<domain>/<stem>.png          prediction as train ids 0…18, 8-bit grey — the file
///                                      `causal-tune score --pred DIR/<domain> --gt …` reads
///     DIR/<domain>/<stem>_color.png    prediction in the Cityscapes palette
///     DIR/<domain>/<stem>_overlay.png  palette at α = 0.5 over the input image
///     DIR/<domain>/<stem>_error.png    wrong → red, ignored ground truth → black, correct →
///                                      the ground-truth colour dimmed to 35 %
///
/// `<domain>` is the val entry's display name (`/` → `_`), `<stem>` the image's stem
/// (`FileStem`: `X_leftImg8bit.png` → `X`), so `score` pairs `<stem>.png` with the
/// ground truth; the `_color` / `_overlay` / `_error` files have other stems and `score`
/// leaves them alone (predictions without ground truth are ignored). Every file has the
/// image's original size, the size of the label and of the prediction the metrics count
/// (logits are resized back to it before the argmax), so `score` over the folder gives
/// evaluate's numbers exactly.
public final class PredictionPictures {
    public let directory: String
    /// Opacity of the palette in the overlay.
    public var overlayAlpha: Double = 0.5
    private var checkedDomains: Set<String> = []

    /// Creates `directory` (and parents) and checks that files can be written there; a
    /// path that is a file, or a folder that cannot be created or written, is one error.
    public init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw CausalTuneError("\(directory): --save-pred path exists and is not a directory") }
        } else {
            do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                throw CausalTuneError("\(directory): cannot create the --save-pred directory")
            }
        }
        let probe = (directory as NSString).appendingPathComponent(".causal-tune-write-test-\(getpid())")
        guard fm.createFile(atPath: probe, contents: Data()) else {
            throw CausalTuneError("\(directory): --save-pred directory is not writable")
        }
        try? fm.removeItem(atPath: probe)
    }

    /// The folder of one domain's files.
    public func domainDirectory(_ domain: String) -> String {
        (directory as NSString).appendingPathComponent(domain.replacingOccurrences(of: "/", with: "_"))
    }

    /// The four file paths of one image: (train ids, colour, overlay, error map).
    public func paths(domain: String, stem: String) -> (trainIds: String, color: String, overlay: String, error: String) {
        let base = (domainDirectory(domain) as NSString).appendingPathComponent(stem)
        return (base + ".png", base + "_color.png", base + "_overlay.png", base + "_error.png")
    }

    /// Writes the four files of sample `index` of `dataset` (image, ground truth and
    /// prediction of equal size). The first image of a domain checks that its stems are
    /// distinct (two images with one stem would overwrite each other's files, and `score`
    /// could not pair them either).
    public func write(dataset: Dataset, index: Int, image: RGBImage, groundTruth: LabelMap, prediction: LabelMap) throws {
        if !checkedDomains.contains(dataset.name) {
            var seen: [String: String] = [:]
            for s in dataset.samples {
                if let other = seen[s.stem] {
                    throw CausalTuneError("\(s.image): --save-pred needs distinct image stems, '\(s.stem)' is also \(other)")
                }
                seen[s.stem] = s.image
            }
            checkedDomains.insert(dataset.name)
        }
        guard image.width == prediction.width, image.height == prediction.height,
              groundTruth.width == prediction.width, groundTruth.height == prediction.height else {
            throw CausalTuneError("\(dataset.samples[index].image): image \(image.width)x\(image.height), ground truth \(groundTruth.width)x\(groundTruth.height) and prediction \(prediction.width)x\(prediction.height) differ in size")
        }
        let p = paths(domain: dataset.name, stem: dataset.samples[index].stem)
        try ImageIO.writePNG(prediction, to: p.trainIds)
        try SegmentationPicture.colorize(prediction).writePNG(to: p.color)
        try SegmentationPicture.overlay(image, prediction, alpha: overlayAlpha).writePNG(to: p.overlay)
        try SegmentationPicture.errorMap(prediction: prediction, groundTruth: groundTruth).writePNG(to: p.error)
    }

    /// `write` as the evaluator's sink.
    public var sink: PredictionSink {
        { [self] dataset, index, image, groundTruth, prediction in
            try write(dataset: dataset, index: index, image: image, groundTruth: groundTruth, prediction: prediction)
        }
    }
}
