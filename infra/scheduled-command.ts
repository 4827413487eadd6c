import { Cron, Duration, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { PropsError } from "./errors.ts";
import { CONTAINER_SECURITY, type Component, componentLabels, POD_SECURITY } from "./workload-defaults.ts";

export interface ScheduledCommandProps {
  /** deepqueue prefix, for labels. */
  readonly prefix: string;
  readonly component: Extract<Component, "reconciler" | "bootstrap">;
  /** CronJob or Job name. */
  readonly name: string;
  /** The `deepqueue` subcommand and its arguments, e.g. ["reconcile"]. */
  readonly args: readonly string[];
  readonly image: string;
  /** @default kplus.ImagePullPolicy.IF_NOT_PRESENT */
  readonly imagePullPolicy?: kplus.ImagePullPolicy;
  readonly config: kplus.IConfigMap;
  readonly serviceAccount: kplus.IServiceAccount;
  /** A five-field cron expression; without one, a one-off Job. @default - a Job */
  readonly schedule?: string;
  /** The longest one run may take. @default 600 */
  readonly activeDeadlineSeconds?: number;
}

/** Parses "m h dom mon dow" into cdk8s's Cron. */
export function parseCron(expression: string): Cron {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw new PropsError(
      "ScheduledCommand",
      `schedule "${expression}" must have 5 fields (minute hour day month weekday)`,
    );
  }
  const [minute, hour, day, month, weekDay] = fields as [string, string, string, string, string];
  return Cron.schedule({ minute, hour, day, month, weekDay });
}

/**
 * A `deepqueue <command>` run by Kubernetes: on a schedule as a CronJob (the
 * reconciler), or once as a Job (bootstrap).
 *
 * @example
 * new ScheduledCommand(chart, "reconciler", { prefix, component: "reconciler", name: "deepqueue-reconciler",
 *   args: ["reconcile"], schedule: "*\/5 * * * *", image, config, serviceAccount });
 */
export class ScheduledCommand extends Construct {
  readonly workload: kplus.CronJob | kplus.Job;

  constructor(scope: Construct, id: string, props: ScheduledCommandProps) {
    super(scope, id);
    const labels = {
      ...componentLabels(props.prefix, props.component),
      "app.kubernetes.io/name": props.name,
    };
    const common = {
      metadata: { name: props.name, labels },
      podMetadata: { labels },
      serviceAccount: props.serviceAccount,
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      activeDeadline: Duration.seconds(props.activeDeadlineSeconds ?? 600),
    };
    this.workload = props.schedule
      ? new kplus.CronJob(this, "cron-job", {
          ...common,
          schedule: parseCron(props.schedule),
          // A slow run must not pile up behind itself.
          concurrencyPolicy: kplus.ConcurrencyPolicy.FORBID,
          startingDeadline: Duration.seconds(120),
          successfulJobsRetained: 1,
          failedJobsRetained: 3,
          backoffLimit: 1,
        })
      : new kplus.Job(this, "job", { ...common, backoffLimit: 4, ttlAfterFinished: Duration.hours(1) });
    const container = this.workload.addContainer({
      name: props.component,
      image: props.image,
      imagePullPolicy: props.imagePullPolicy ?? kplus.ImagePullPolicy.IF_NOT_PRESENT,
      command: ["deepqueue", ...props.args],
      envFrom: [kplus.Env.fromConfigMap(props.config)],
      resources: {
        cpu: { request: kplus.Cpu.millis(100), limit: kplus.Cpu.millis(500) },
        memory: { request: Size.mebibytes(256), limit: Size.mebibytes(512) },
        ephemeralStorage: { request: Size.gibibytes(1) },
      },
      securityContext: CONTAINER_SECURITY,
    });
    container.mount("/tmp", kplus.Volume.fromEmptyDir(this, "tmp", "tmp", { sizeLimit: Size.mebibytes(64) }));
  }
}
