/**
 * The validator role as the daemon runs it: its data part (data-validator: fetch, score and vote
 * on submitted data) and its weights part (this folder: judge trainers' weights, send verdicts),
 * started in that order and stopped in reverse, under the one role name.
 */
import type { RoleContext, RoleService } from "../../service.ts";

export class ValidatorService implements RoleService {
  readonly name = "validator";
  readonly parts: readonly RoleService[];
  readonly #started: RoleService[] = [];

  constructor(...parts: RoleService[]) {
    this.parts = parts;
  }

  async start(ctx: RoleContext): Promise<void> {
    for (const part of this.parts) {
      try {
        await part.start(ctx);
      } catch (err) {
        await this.stop().catch(() => {});
        throw err;
      }
      this.#started.push(part);
    }
  }

  async stop(): Promise<void> {
    const errors: unknown[] = [];
    for (const part of this.#started.splice(0).reverse()) {
      await part.stop().catch((err: unknown) => errors.push(err));
    }
    if (errors.length > 0) throw errors[0];
  }
}
