import { describe, expect, it } from "vitest";
import { markdownTable } from "./report.ts";

describe("markdownTable", () => {
  it("writes cells as the repository's formatter keeps them: trimmed, pipes escaped, columns padded", () => {
    const text = markdownTable({
      title: "t",
      columns: ["how", "n"],
      rows: [
        ["  of which: part ", 3],
        ["a | b", 10],
      ],
    });
    expect(text).toContain("| of which: part | 3   |");
    expect(text).toContain("| a \\| b         | 10  |");
  });
});
