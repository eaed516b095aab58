import Data
import Foundation
import ImageIO
import Synthetic
import XCTest

final class SyntheticBenchmarkTests: XCTestCase {
    func testWrittenBenchmarkHasEveryDomainValidIdenticalLabelsAndTenClasses() throws {
        let dir = try makeTempDir(self)
        let bench = SyntheticBenchmark(seed: 7)
        try bench.write(to: dir, train: 6, val: 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/README.txt"))
        var classes = Set<UInt8>()
        for split in ["train", "val"] {
            for i in 0..<(split == "train" ? 6 : 3) {
                let name = SyntheticBenchmark.name(split: split, index: i) + ".png"
                let ref = try ImageIO.readLabels("\(dir)/source/labels/\(split)/\(name)")
                XCTAssertEqual(ref.width, SyntheticBenchmark.defaultWidth)
                XCTAssertEqual(ref.height, SyntheticBenchmark.defaultHeight)
                for v in ref.labels { XCTAssertTrue(v < 19 || v == 255, "label \(v)") ; classes.insert(v) }
                var images: [RGBImage] = []
                for d in SyntheticDomain.allCases {
                    let l = try ImageIO.readLabels("\(dir)/\(d.rawValue)/labels/\(split)/\(name)")
                    XCTAssertEqual(l, ref, "\(d) labels equal source labels")
                    let img = try ImageIO.readRGB("\(dir)/\(d.rawValue)/images/\(split)/\(name)")
                    XCTAssertEqual(img.width, ref.width)
                    images.append(img)
                }
                // weather changes the appearance: every domain differs from the clean image
                for k in 1..<images.count { XCTAssertNotEqual(images[k], images[0]) }
            }
        }
        classes.remove(255)
        XCTAssertGreaterThanOrEqual(classes.count, 10, "classes present: \(classes.sorted())")
    }

    func testScenesAreDeterministicFromTheSeed() {
        let a = SyntheticBenchmark(width: 96, height: 48, seed: 11)
        let r1 = a.render(split: "train", index: 3), r2 = a.render(split: "train", index: 3)
        XCTAssertEqual(r1.labels, r2.labels)
        for d in SyntheticDomain.allCases { XCTAssertEqual(r1.images[d], r2.images[d], "\(d)") }
        let b = SyntheticBenchmark(width: 96, height: 48, seed: 12)
        XCTAssertNotEqual(b.render(split: "train", index: 3).images[.source], r1.images[.source])
        XCTAssertNotEqual(a.render(split: "train", index: 4).labels, r1.labels)
    }

    func testFogFollowsKoschmiederWithDepth() {
        // Far pixels (sky, depth 1000 m) are pure airlight; fog lowers contrast with distance.
        let b = SyntheticBenchmark(width: 128, height: 64, seed: 5)
        let r = b.render(split: "val", index: 0)
        let fog = r.images[.fog]!
        var skyVals: [Int] = []
        for i in 0..<(r.labels.labels.count) where r.labels.labels[i] == 10 && r.depth[i] >= 999 {
            skyVals.append(Int(fog.pixels[3 * i + 1]))
        }
        XCTAssertFalse(skyVals.isEmpty)
        XCTAssertLessThanOrEqual(skyVals.max()! - skyVals.min()!, 2, "sky is uniformly the airlight in fog")
    }
}
