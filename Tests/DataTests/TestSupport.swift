import Foundation
import XCTest

/// A fresh temporary directory, removed at the end of the test.
func makeTempDir(_ test: XCTestCase) throws -> String {
    let dir = NSTemporaryDirectory() + "causal-tune-data-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// The path of a fixture file or folder.
func fixture(_ rel: String) -> String {
    Bundle.module.resourcePath! + "/Fixtures/" + rel
}

func loadJSON(_ path: String) throws -> [String: Any] {
    let d = try Foundation.Data(contentsOf: URL(fileURLWithPath: path))
    return try JSONSerialization.jsonObject(with: d) as! [String: Any]
}
