/** Types of scripts/check-provider-schemas.js, for the tests. */
export interface CheckOptions {
  /** Prefix of every problem. @default "stack" */
  readonly label?: string;
  /** Folder of the `<provider>-<version>.json` schema dumps. @default the repository's schemas/ */
  readonly schemaDir?: string;
}
/** Problems of one parsed cdk.tf.json against the committed provider schemas, one line each. */
export function checkStack(stack: unknown, options?: CheckOptions): string[];
