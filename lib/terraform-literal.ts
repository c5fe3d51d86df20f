/**
 * Terraform reads `${` and `%{` in every string as template syntax, and cdktf passes plain
 * strings through unchanged. Text that must arrive as written (shell scripts in user-data,
 * well-known payloads in KV) is escaped here (`$${`, `%%{`). cdktf's own token markers
 * (`${TfToken[…]}`) are left alone, so references to other resources still resolve.
 */
export function terraformLiteral(value: string): string {
  return value.replace(/([$%])\{(?!TfToken\[)/g, "$1$1{");
}
