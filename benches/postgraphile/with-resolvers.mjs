// Node 20 lacks Promise.withResolvers (Node 22 has it), which grafast uses;
// loaded with `node --import` before PostGraphile, only when missing.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
