export { CHAT_STOPS, renderChat } from "./chat.ts";
export { OpenAIError } from "./errors.ts";
export { DEFAULT_LIMITS, type ServeLimits } from "./requests.ts";
export { type OpenAIServer, type OpenAIServerOptions, startOpenAIServer } from "./server.ts";
