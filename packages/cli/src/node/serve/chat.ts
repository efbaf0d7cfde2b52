/**
 * The chat template. The tiny models this network trains have none, so messages are rendered as
 * plain labelled lines and the model continues after "Assistant:":
 *
 *   System: You are terse.
 *   User: What is a week?
 *   Assistant:
 *
 * A `chat_template` in a model's config (Jinja, from Hugging Face) is not rendered: this server
 * does not run Jinja, and says so at start (`chatTemplateIgnored`). Generation also stops before
 * "\nUser:", so a model that keeps writing the dialogue does not answer for the user.
 */
import type { ChatMessage } from "./requests.ts";

const LABEL: Record<ChatMessage["role"], string> = {
  system: "System",
  user: "User",
  assistant: "Assistant",
};

export const CHAT_STOPS: readonly string[] = ["\nUser:"];

export function renderChat(messages: readonly ChatMessage[]): string {
  return `${messages.map((m) => `${LABEL[m.role]}: ${m.content}\n`).join("")}Assistant:`;
}
