import ArgumentParser
import Core
import Data
import Evaluation
import Foundation

/// `causal-tune score --pred DIR --gt DIR [--gt-format trainid|labelid] [--json FILE]`
struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "mIoU of prediction PNGs (train ids) against ground truth, matched by file stem.",
        discussion: """
        Files are matched by stem after stripping Cityscapes-style suffixes such as \
        _leftImg8bit, _gtFine_labelIds, _gtFine_labelTrainIds, _gt_labelIds, _rgb_anon. The \
        confusion matrix is accumulated over the whole set; classes absent from both \
        prediction and ground truth are null and left out of the mean. `pixels` counts \
        the evaluated (non-ignored ground-truth) pixels. Prediction values outside 0..18 \
        count as wrong. Without --gt-format the encoding is inferred from the gt names.
        """
    )

    @Option(help: "Folder of prediction PNGs (train ids 0..18).") var pred: String
    @Option(help: "Folder of ground-truth PNGs.") var gt: String
    @Option(name: .customLong("gt-format"), help: "trainid or labelid (Cityscapes label ids).") var gtFormat: String?
    @Option(help: "Write {\"miou\", \"iou\", \"pixels\"} here.") var json: String?

    func run() throws {
        do {
            var enc: LabelEncoding? = nil
            if let gtFormat {
                guard let e = LabelEncoding(rawValue: gtFormat.lowercased()) else {
                    throw CausalTuneError("--gt-format: '\(gtFormat)' is not trainid or labelid")
                }
                enc = e
            }
            let result = try Score.run(predDir: pred, gtDir: gt, encoding: enc)
            print(result.metrics.table(title: "\(result.images) image pairs, ground truth as \(result.encoding.rawValue)"))
            if let json {
                do { try (result.metrics.jsonObjectText + "\n").write(toFile: json, atomically: true, encoding: .utf8) } catch {
                    throw CausalTuneError("\(json): cannot write JSON: \(error.localizedDescription)")
                }
            }
        } catch let e as CausalTuneError {
            e.printToStandardError()
            throw ExitCode.failure
        }
    }
}
