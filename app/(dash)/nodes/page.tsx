/** `/nodes` is the nodes list, which lives at `/`. */
import { redirect } from "next/navigation";

export default function NodesIndex(): never {
  redirect("/");
}
