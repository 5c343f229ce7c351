import type { ReactNode } from "react";
import { Shell } from "../_components/Shell";

/** Every page behind the login: header (user, role, logout) and navigation. */
export default function DashboardLayout({ children }: { children: ReactNode }) {
  return <Shell>{children}</Shell>;
}
