import { describe, expect, it } from "vitest";
import { barChart, esc, lineChart, logTicks, niceTicks } from "./svg.ts";

describe("hand-written SVG charts", () => {
  it("picks 1-2-5 ticks and powers-of-ten ticks on a log axis", () => {
    expect(niceTicks(0, 17)).toEqual([0, 5, 10, 15]);
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(logTicks(1, 64)).toEqual([1, 2, 5, 10, 20, 50]);
    expect(logTicks(30, 30_000)).toEqual([100, 1000, 10000]);
  });

  it("draws one path per series with data, names empty ones, and escapes text", () => {
    const svg = lineChart({
      title: "p99 < 5 s & more",
      xLabel: "clients",
      yLabel: "req/s",
      xLog: true,
      series: [
        {
          name: "direct",
          points: [
            [1, 0.8],
            [64, 17],
          ],
        },
        { name: "pipeline", points: [] },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<path /g)).toHaveLength(1);
    expect(svg).toContain("pipeline (no data)");
    expect(svg).toContain("p99 &lt; 5 s &amp; more");
    expect(svg).not.toContain("NaN");
  });

  it("sizes a bar chart to its rows and scales bars to the largest value", () => {
    const svg = barChart({
      title: "stages",
      unit: "ms",
      bars: [
        { label: "model", value: 1000 },
        { label: "ingest", value: 10 },
      ],
    });
    const widths = [...svg.matchAll(/<rect x="250" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(widths).toHaveLength(2);
    expect(widths[0]! / widths[1]!).toBeCloseTo(100, 0);
    expect(esc('"<&>"')).toBe("&quot;&lt;&amp;&gt;&quot;");
  });
});
