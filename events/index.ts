export * from "./build.ts";
export * from "./cloudevent.ts";
export * from "./common.ts";
export * from "./conversation.ts";
export * from "./messages.ts";
export * from "./request-record.ts";
export * from "./submit.ts";
