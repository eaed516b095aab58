import XCTest

final class LayersTestsPlaceholder: XCTestCase {}
