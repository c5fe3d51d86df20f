// cdktf's jest matchers (toHaveResourceWithProperties, …), registered in setup.ts.
import "cdktf/lib/testing/adapters/jest";
