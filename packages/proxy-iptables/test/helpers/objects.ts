/** The proxy tests' Services and EndpointSlices live in `@worknode/testing`. */
export {
  commitAll,
  type EpSpec,
  type PortSpec,
  type SliceSpec,
  type SvcSpec,
  slice,
  svc,
} from "@worknode/testing";
