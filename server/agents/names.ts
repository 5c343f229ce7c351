/** Node names and pids as inputs (pure: the browser's filters use them too). */
import { z } from "zod";

export const nodeName = z.string().min(1).max(255);
export const pidText = z.string().regex(/^<\d+\.\d+\.\d+>$/, 'a pid like "<0.116.0>"');
