import XCTest

final class SupportTestsPlaceholder: XCTestCase {}
