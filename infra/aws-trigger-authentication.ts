import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import type { ApiObject } from "cdk8s";
import { Construct } from "constructs";
import { typedApiObject } from "./typed-api-object.ts";

export interface AwsTriggerAuthenticationProps {
  /** Name the ScaledObjects' triggers refer to. */
  readonly name: string;
  /**
   * IAM role KEDA assumes to read queue attributes.
   * @default - the KEDA operator's own identity (its ServiceAccount's IRSA or EKS Pod Identity role)
   */
  readonly roleArn?: string;
}

/**
 * How KEDA authenticates to SQS: AWS pod identity, never static keys.
 * https://keda.sh/docs/latest/authentication-providers/aws/
 *
 * @example
 * new AwsTriggerAuthentication(this, "keda-aws", { name: "deepqueue-aws" });
 */
export class AwsTriggerAuthentication extends Construct {
  readonly name: string;
  readonly apiObject: ApiObject;

  constructor(scope: Construct, id: string, props: AwsTriggerAuthenticationProps) {
    super(scope, id);
    this.name = props.name;
    const auth = new TriggerAuthentication({
      metadata: { name: props.name },
      spec: {
        podIdentity: props.roleArn
          ? { provider: "aws", roleArn: props.roleArn }
          : { provider: "aws", identityOwner: "keda" },
      },
    });
    this.apiObject = typedApiObject(this, "trigger-authentication", auth);
  }
}
