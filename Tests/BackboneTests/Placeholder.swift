import XCTest

final class BackboneTestsPlaceholder: XCTestCase {}
