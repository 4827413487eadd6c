import { Testing } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { describe, expect, it } from "vitest";
import { IngestService } from "./ingest-service.ts";
import { KedaScaler, prometheusTrigger, sqsTrigger } from "./keda-scaler.ts";
import { ModelServer } from "./model-server.ts";
import { ModelServerScaler } from "./model-server-scaler.ts";
import { parseCron } from "./scheduled-command.ts";

const server = {
  name: "m",
  prefix: "deepqueue",
  model: "deepseek-r1-distill-qwen-7b",
  gpu: "A100-80GB",
} as const;

describe("constructors refuse contradictory props, naming them", () => {
  it("ModelServer: a ReadWriteOnce claim for several replicas, an existing claim on emptyDir", () => {
    expect(
      () =>
        new ModelServer(Testing.chart(), "s", {
          ...server,
          cache: { type: "pvc", accessMode: "ReadWriteOnce" },
          maxReplicas: 3,
        }),
    ).toThrow("ModelServer m: cache.accessMode ReadWriteOnce cannot serve maxReplicas 3");
    expect(
      () =>
        new ModelServer(Testing.chart(), "s", {
          ...server,
          cache: { type: "emptyDir", existingClaim: "weights" },
        }),
    ).toThrow('cache.existingClaim needs cache.type "pvc"');
  });

  it("ModelServer: mounts an existing claim instead of making one", () => {
    const chart = Testing.chart();
    new ModelServer(chart, "s", { ...server, cache: { type: "pvc", existingClaim: "weights" } });
    const objects = Testing.synth(chart);
    expect(objects.some((o) => o.kind === "PersistentVolumeClaim")).toBe(false);
    const deployment = objects.find((o) => o.kind === "Deployment");
    expect(deployment.spec.template.spec.volumes).toContainEqual({
      name: "model-cache",
      persistentVolumeClaim: { claimName: "weights", readOnly: false },
    });
  });

  it("ModelServerScaler: a cooldown shorter than the model load", () => {
    const chart = Testing.chart();
    const s = new ModelServer(chart, "s", { ...server, modelLoadSeconds: 1200 });
    expect(
      () =>
        new ModelServerScaler(chart, "scaler", {
          server: s,
          namespace: "deepqueue",
          inferenceQueueUrl: "deepqueue-inference",
          region: "us-east-1",
          triggerAuthName: "aws",
          prometheusUrl: "http://prometheus:9090",
          cooldownSeconds: 600,
        }),
    ).toThrow("cooldownSeconds (600) must exceed the server's modelLoadSeconds (1200)");
  });

  it("KedaScaler: min above max, no triggers, fallback with a Value trigger", () => {
    const chart = Testing.chart();
    const target = new kplus.Deployment(chart, "d", { containers: [{ image: "x" }] });
    const queue = sqsTrigger({ queueUrl: "q", region: "us-east-1", queueLength: 5, authName: "aws" });
    expect(
      () =>
        new KedaScaler(chart, "a", { target, name: "a", minReplicas: 3, maxReplicas: 2, triggers: [queue] }),
    ).toThrow("minReplicas (3) exceeds maxReplicas (2)");
    expect(() => new KedaScaler(chart, "b", { target, name: "b", triggers: [] })).toThrow(
      "triggers must not be empty",
    );
    const latency = {
      ...prometheusTrigger({ name: "p95", serverAddress: "http://p:9090", query: "q", threshold: 1 }),
      metricType: "Value",
    };
    expect(
      () =>
        new KedaScaler(chart, "c", {
          target,
          name: "c",
          triggers: [latency],
          fallback: { replicas: 1, failureThreshold: 3 },
        }),
    ).toThrow("fallback needs every trigger's metricType to be AverageValue");
  });

  it("IngestService: min above max, a target above the hard limit", () => {
    const props = { prefix: "deepqueue", image: "x", configMapName: "c", serviceAccountName: "s" };
    expect(() => new IngestService(Testing.chart(), "i", { ...props, minScale: 5, maxScale: 2 })).toThrow(
      "minScale (5) exceeds maxScale (2)",
    );
    expect(
      () =>
        new IngestService(Testing.chart(), "i", {
          ...props,
          containerConcurrency: 10,
          targetConcurrency: 20,
        }),
    ).toThrow("targetConcurrency (20) exceeds containerConcurrency (10)");
  });

  it("parseCron: five fields or a message saying so", () => {
    expect(parseCron("*/5 * * * *").expressionString).toBe("*/5 * * * *");
    expect(() => parseCron("every 5 minutes")).toThrow("must have 5 fields");
  });
});
