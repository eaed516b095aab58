import Core
import Data
import Foundation
import ImageIO
import Synthetic
import XCTest

final class DatasetTests: XCTestCase {
    let img = RGBImage(width: 8, height: 4, fill: 100)

    func writeImage(_ path: String) throws { try ImageIO.writePNG(img, to: path) }
    func writeLabel(_ path: String, _ v: UInt8, width: Int = 8) throws {
        try ImageIO.writePNG(LabelMap(width: width, height: 4, fill: v), to: path)
    }
    func writeJPEG(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture("images/photo.jpg"), toPath: path)
    }

    func testEveryNativeLayoutListsItsPairsAndMapsLabels() throws {
        let d = try makeTempDir(self)
        // Cityscapes: label ids in one, train ids in the other
        try writeImage("\(d)/cs/leftImg8bit/val/aachen/a_000001_leftImg8bit.png")
        try writeLabel("\(d)/cs/gtFine/val/aachen/a_000001_gtFine_labelIds.png", 26)  // car
        try writeImage("\(d)/cs/leftImg8bit/val/bonn/b_000002_leftImg8bit.png")
        try writeLabel("\(d)/cs/gtFine/val/bonn/b_000002_gtFine_labelTrainIds.png", 13)
        try writeLabel("\(d)/cs/gtFine/val/bonn/b_000002_gtFine_labelIds.png", 26)
        let cs = try Dataset(kind: .cityscapes, root: "\(d)/cs", split: "val")
        XCTAssertEqual(cs.count, 2)
        XCTAssertEqual(cs.samples[0].encoding, .labelId)
        XCTAssertEqual(cs.samples[1].encoding, .trainId)
        XCTAssertEqual(try cs.load(0).labels.labels.first, 13)
        XCTAssertEqual(try cs.load(1).labels.labels.first, 13)
        XCTAssertEqual(cs.evalScale?.width, 1024)
        // GTA5
        try writeImage("\(d)/gta/images/00001.png"); try writeLabel("\(d)/gta/labels/00001.png", 7)
        try writeImage("\(d)/gta/images/00002.png"); try writeLabel("\(d)/gta/labels/00002_labelTrainIds.png", 1)
        let gta = try Dataset(named: "gta5", root: "\(d)/gta", split: "train")
        XCTAssertEqual(gta.count, 2)
        XCTAssertEqual(try gta.load(0).labels.labels.first, 0)
        XCTAssertEqual(try gta.load(1).labels.labels.first, 1)
        XCTAssertEqual(gta.trainScale?.width, 1280)
        // BDD100K (JPEG images)
        try writeJPEG("\(d)/bdd/images/10k/val/x1.jpg")
        try ImageIO.writePNG(LabelMap(width: 24, height: 16, fill: 2), to: "\(d)/bdd/labels/sem_seg/masks/val/x1.png")
        let bdd = try Dataset(kind: .bdd100k, root: "\(d)/bdd", split: "val")
        XCTAssertEqual(bdd.count, 1); XCTAssertEqual(try bdd.load(0).image.width, 24)
        // Mapillary
        try writeJPEG("\(d)/map/half/val_img/m1.jpg")
        try ImageIO.writePNG(LabelMap(width: 24, height: 16, fill: 255), to: "\(d)/map/half/val_label/m1.png")
        XCTAssertEqual(try Dataset(kind: .mapillary, root: "\(d)/map").count, 1)
        // ACDC, two conditions
        for c in ["fog", "night", "rain", "snow"] {
            try writeImage("\(d)/acdc/rgb_anon/\(c)/val/GOPR01/G_\(c)_rgb_anon.png")
            try writeLabel("\(d)/acdc/gt/\(c)/val/GOPR01/G_\(c)_gt_labelIds.png", 23)  // sky
        }
        let night = try Dataset(kind: .acdc, root: "\(d)/acdc", split: "val", selection: "night")
        XCTAssertEqual(night.count, 1); XCTAssertEqual(night.name, "acdc-night")
        XCTAssertEqual(try night.load(0).labels.labels.first, 10)
        XCTAssertEqual(try Dataset(kind: .acdc, root: "\(d)/acdc", split: "val").count, 4)
        XCTAssertThrowsError(try Dataset(kind: .acdc, root: "\(d)/acdc", selection: "hail"))
        // synthetic, written by the generator
        try SyntheticBenchmark(width: 64, height: 32, seed: 1).write(to: "\(d)/syn", train: 2, val: 1)
        let syn = try Dataset(kind: .synthetic, root: "\(d)/syn", split: "train", selection: "fog")
        XCTAssertEqual(syn.count, 2)
        XCTAssertEqual(try syn.load(1).labels, try Dataset(kind: .synthetic, root: "\(d)/syn", split: "train").load(1).labels)
        // folder with mixed png/jpg
        try writeImage("\(d)/f/images/a.png"); try writeLabel("\(d)/f/labels/a.png", 5)
        let f = try Dataset(kind: .folder, root: "\(d)/f")
        XCTAssertEqual(f.count, 1); XCTAssertEqual(try f.load(0).labels.labels.first, 5)
    }

    func testWrongLayoutsAreOneClearError() throws {
        let d = try makeTempDir(self)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return (error as? CausalTuneError)?.message ?? "\(error)" }
        }
        XCTAssertTrue(message { _ = try Dataset(kind: .cityscapes, root: "\(d)/none") }.contains("\(d)/none"))
        try writeImage("\(d)/cs/leftImg8bit/val/c/z_leftImg8bit.png")
        XCTAssertTrue(message { _ = try Dataset(kind: .cityscapes, root: "\(d)/cs") }.contains("gtFine/val"))
        try FileManager.default.createDirectory(atPath: "\(d)/cs/gtFine/val/c", withIntermediateDirectories: true)
        let missing = message { _ = try Dataset(kind: .cityscapes, root: "\(d)/cs") }
        XCTAssertTrue(missing.contains("z_leftImg8bit.png") && missing.contains("z_gtFine_labelIds.png"), missing)
        // orphan label: counts differ
        try writeImage("\(d)/f/images/a.png"); try writeLabel("\(d)/f/labels/a.png", 1); try writeLabel("\(d)/f/labels/b.png", 1)
        XCTAssertTrue(message { _ = try Dataset(kind: .folder, root: "\(d)/f") }.contains("b.png"))
        // size mismatch reported at load, naming both files
        try FileManager.default.removeItem(atPath: "\(d)/f/labels/b.png")
        try writeLabel("\(d)/f/labels/a.png", 1, width: 9)
        let ds = try Dataset(kind: .folder, root: "\(d)/f")
        let m = message { _ = try ds.load(0) }
        XCTAssertTrue(m.contains("a.png") && m.contains("9x4"), m)
        XCTAssertTrue(message { _ = try Dataset(named: "kitti", root: d) }.contains("kitti"))
    }
}
