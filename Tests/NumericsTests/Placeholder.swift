import XCTest

final class NumericsTestsPlaceholder: XCTestCase {}
