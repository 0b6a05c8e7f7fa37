// The playground's own script, served as a file (not inline) so the page's
// Content-Security-Policy can allow scripts from memberdesk itself only.
// Everything this page needs is served by memberdesk itself, so the
// playground works on a machine without internet access.
// GraphiQL's dialogs lock page scrolling with a <style> element they create;
// they give it the nonce found here, which this response's policy allows.
window.__webpack_nonce__ = document.querySelector('meta[name="memberdesk-style-nonce"]').content;

const defaultQuery = `# Welcome to memberdesk.
#
# 1. Log in (demo data: username "admin", password "memberdesk-demo"):
mutation Login {
  login(username: "admin", password: "memberdesk-demo") { token user { username } }
}
# 2. Copy the token into the Headers tab below as
#    { "Authorization": "Bearer <token>" }
# 3. Then explore:
query Members {
  users(first: 10) { totalCount edges { node { id username isActive isStaff groups { name } } } }
}
`;
const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    defaultEditorToolsVisibility: true,
    shouldPersistHeaders: false,
  }),
);
